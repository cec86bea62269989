"""`moto_server` plus the public SSM parameters sindri reads to find official images.

moto serves Amazon Linux's `/aws/service/...` parameters but not Canonical's Ubuntu ones
nor AWS's Deep Learning AMI ones, and refuses to create any `/aws/` parameter through
the API (as AWS does). This launcher adds them to every SSM backend moto creates, with
the same names as on AWS, pointing at AMIs moto knows, then runs moto_server with the
arguments it was given (e.g. `-H 127.0.0.1 -p 5000`).

The values are chosen so a test can tell which parameter was read:
  amd64 Ubuntu 24.04  -> ami-1e749f67           (moto's Canonical Ubuntu image)
  arm64 Ubuntu 24.04  -> ami-0a1b2c3d4e5f6a7b8  (an arm64 Ubuntu image added here: moto has none)
  amd64 Ubuntu 22.04  -> ami-785db401           (another Canonical image moto knows)
  x86_64 DLAMI        -> ami-dca37ea5           (moto's "Deep Learning AMI Ubuntu")
"""

import datetime
import sys

try:
    from moto.ec2.models import amis
    from moto.ssm import models
    from moto.server import main
except ImportError as e:  # pragma: no cover - reported to the Rust test
    sys.stderr.write(f"moto is not installed ({e}); install it: pip install 'moto[server]'\n")
    sys.exit(3)

ARM64_UBUNTU = "ami-0a1b2c3d4e5f6a7b8"

SEEDS = {
    "/aws/service/canonical/ubuntu/server/24.04/stable/current/amd64/hvm/ebs-gp3/ami-id": "ami-1e749f67",
    "/aws/service/canonical/ubuntu/server/24.04/stable/current/arm64/hvm/ebs-gp3/ami-id": ARM64_UBUNTU,
    "/aws/service/canonical/ubuntu/server/22.04/stable/current/amd64/hvm/ebs-gp2/ami-id": "ami-785db401",
    "/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-22.04/latest/ami-id": "ami-dca37ea5",
}

_original = models.ParameterDict._check_loading_status


def _with_seeds(self, key):
    _original(self, key)
    if getattr(self, "_sindri_seeded", False):
        return
    self._sindri_seeded = True
    for name, value in SEEDS.items():
        # Bypass ParameterDict.__getitem__ (which would call this again).
        versions = super(models.ParameterDict, self).__getitem__(name)
        if versions:
            continue
        versions.append(
            models.Parameter(
                account_id=self.account_id,
                name=name,
                value=value,
                parameter_type="String",
                description=None,
                allowed_pattern=None,
                keyid=None,
                last_modified_date=datetime.datetime.now(datetime.timezone.utc),
                version=1,
                data_type="aws:ec2:image",
            )
        )


models.ParameterDict._check_loading_status = _with_seeds

_original_load_amis = amis.AmiBackend._load_amis


def _with_arm64_ubuntu(self):
    _original_load_amis(self)
    self.amis[ARM64_UBUNTU] = amis.Ami(
        self,
        ami_id=ARM64_UBUNTU,
        state="available",
        public=True,
        owner_id="099720109477",
        owner_alias="amazon",
        image_location="amazon/getting-started",
        root_device_type="ebs",
        root_device_name="/dev/sda1",
        description="Canonical, Ubuntu, 24.04, arm64 noble image (seeded for sindri's tests)",
        image_type="machine",
        architecture="arm64",
        name="ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-arm64-server-20260101",
        virtualization_type="hvm",
        hypervisor="xen",
    )


amis.AmiBackend._load_amis = _with_arm64_ubuntu

if __name__ == "__main__":
    main(sys.argv[1:])
