"""`moto_server` plus the public SSM parameters sindri reads to find official images.

moto serves Amazon Linux's `/aws/service/...` parameters but not Canonical's Ubuntu ones
nor AWS's Deep Learning AMI ones, and refuses to create any `/aws/` parameter through
the API (as AWS does). This launcher adds them to every SSM backend moto creates, with
the same names as on AWS, pointing at AMIs moto knows, then runs moto_server with the
arguments it was given (e.g. `-H 127.0.0.1 -p 5000`).

It also pages two Describe calls that moto answers whole, as EC2 pages them
(`MaxResults` within EC2's range, an opaque `NextToken` for the rest):
`DescribeSecurityGroups` (over the groups that match), and `DescribeInstanceTypes`
(over the whole catalogue, filtering each page afterwards: EC2 may answer a page
with fewer items than `MaxResults`, even none, and a `NextToken`, so a client must
follow the token until it is gone).

The values are chosen so a test can tell which parameter was read:
  amd64 Ubuntu 24.04  -> ami-1e749f67           (moto's Canonical Ubuntu image)
  arm64 Ubuntu 24.04  -> ami-0a1b2c3d4e5f6a7b8  (an arm64 Ubuntu image added here: moto has none)
  amd64 Ubuntu 22.04  -> ami-785db401           (another Canonical image moto knows)
  x86_64 DLAMI        -> ami-dca37ea5           (moto's "Deep Learning AMI Ubuntu")
"""

import datetime
import sys

try:
    from moto.core.responses import ActionResult
    from moto.ec2.exceptions import InvalidParameterValue
    from moto.ec2.models import amis
    from moto.ec2.responses.instances import InstanceResponse
    from moto.ec2.responses.security_groups import SecurityGroups
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


def _page(response, items, low, high):
    """The page of `items` the request asks for, and the token of the next one."""
    raw = response._get_param("MaxResults")
    if raw is None:
        return items, None
    size = int(raw)
    if not low <= size <= high:
        raise InvalidParameterValue(
            f"Value ( {size} ) for parameter maxResults is invalid. "
            f"Expecting a value between {low} and {high}."
        )
    token = response._get_param("NextToken")
    start = 0
    if token:
        if not token.startswith("page-") or not token[5:].isdigit():
            raise InvalidParameterValue(f"Invalid value '{token}' for nextToken")
        start = int(token[5:])
    end = start + size
    return items[start:end], (f"page-{end}" if end < len(items) else None)


def _security_groups(self):
    groups = self.ec2_backend.describe_security_groups(
        group_ids=self._get_param("GroupIds", []),
        groupnames=self._get_param("GroupNames", []),
        filters=self._filters_from_querystring(),
    )
    groups = sorted(groups, key=lambda g: g.id)
    page, token = _page(self, groups, 5, 1000)
    result = {"SecurityGroups": page}
    if token:
        result["NextToken"] = token
    return ActionResult(result)


def _instance_types(self):
    wanted = self._get_param("InstanceTypes", [])
    filters = self._filters_from_querystring()
    backend = self.ec2_backend
    if wanted:
        backend.describe_instance_types(wanted, None)  # unknown types: EC2's error
    catalogue = sorted(t["InstanceType"] for t in backend.describe_instance_types(None, None))
    page, token = _page(self, catalogue, 5, 100)
    names = [n for n in page if not wanted or n in wanted]
    matches = backend.describe_instance_types(names, filters) if names else []
    result = {"InstanceTypes": matches}
    if token:
        result["NextToken"] = token
    return ActionResult(result)


SecurityGroups.describe_security_groups = _security_groups
InstanceResponse.describe_instance_types = _instance_types

if __name__ == "__main__":
    main(sys.argv[1:])
