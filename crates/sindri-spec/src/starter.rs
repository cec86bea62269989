//! The commented starter `sindri.yaml` that `sindri config init --provider NAME` writes.
//!
//! It is a working file (it loads without a diagnostic) whose comments teach each key,
//! with the optional sections present but commented out, so a person can enable them
//! by removing a `#`.

use std::fmt::Write;

use crate::model::ProviderKind;

/// Where the starter's modeline expects the schema, relative to the config file.
pub const SCHEMA_PATH: &str = ".sindri/sindri.schema.json";

/// A commented starter `sindri.yaml` for `provider`.
///
/// Line 1 is the `yaml-language-server` modeline pointing at [`SCHEMA_PATH`], which
/// gives editors completion and inline errors once the schema is written there.
pub fn starter(provider: ProviderKind) -> String {
    let mut s = String::with_capacity(4096);
    let _ = write!(
        s,
        "# yaml-language-server: $schema={SCHEMA_PATH}\n\
         #\n\
         # sindri.yaml: one environment, described once; `sindri deploy` makes it real.\n\
         # Check it with `sindri config validate`. Every key is described in the schema\n\
         # (`sindri config schema`); editors read it through the line above.\n\
         \n\
         # The environment's name: a DNS label (lowercase letters, digits and `-`,\n\
         # starting with a letter, at most 63 characters). Every resource sindri\n\
         # creates is named and labelled after it.\n\
         name: my-env\n\
         \n\
         deployment:\n  \
           # Where it runs: docker, kubernetes, fly, e2b, devpod, aws, runpod, lyceum or local.\n  \
           provider: {provider}\n"
    );
    s.push_str(image_section(provider));
    s.push_str(resources_section(provider));
    s.push_str(COMMON_DEPLOYMENT);
    s.push_str(SECRETS_AND_EXTENSIONS);
    s.push_str(provider_section(provider));
    s.push_str(RUN_SECTION);
    s
}

fn image_section(provider: ProviderKind) -> &'static str {
    match provider {
        ProviderKind::Docker
        | ProviderKind::Kubernetes
        | ProviderKind::Fly
        | ProviderKind::Devpod
        | ProviderKind::Runpod => {
            "  # The container image to run. To build one from a Dockerfile instead, remove\n  \
             # `image` and use `build` (paths are relative to this file):\n  \
             # build:\n  \
             #   dockerfile: Dockerfile\n  \
             #   context: .\n  \
             #   args: {PYTHON_VERSION: \"3.12\"}\n  \
             image: ubuntu:24.04\n"
        }
        ProviderKind::Aws => {
            "  # The AMI to boot; leave it out and sindri picks the current Ubuntu LTS AMI\n  \
             # of the region.\n  \
             # image: ami-0123456789abcdef0\n"
        }
        ProviderKind::E2b => {
            "  # E2B runs a sandbox template, set in `providers.e2b.template` below;\n  \
             # `image` and `build` are not used.\n"
        }
        ProviderKind::Lyceum => {
            "  # Lyceum boots its own GPU VM image; `image` and `build` are not needed.\n"
        }
        ProviderKind::Local => "  # Local runs on this machine, without an image or isolation.\n",
    }
}

fn resources_section(provider: ProviderKind) -> &'static str {
    match provider {
        ProviderKind::Runpod | ProviderKind::Lyceum => {
            "  # Compute. Sizes take KiB/MiB/GiB/TiB (powers of 1024) or KB/MB/GB/TB.\n  \
             resources:\n    \
               cpus: 8             # cores; `0.5` or \"500m\" for part of one\n    \
               memory: 32GiB\n    \
               disk: 100GiB        # the persistent home volume\n    \
               gpu:\n      \
                 count: 1\n      \
                 type: h100        # leave out to accept any model\n"
        }
        ProviderKind::Local => {
            "  # Resources are not enforced on this machine; they document what the job needs.\n  \
             # resources:\n  \
             #   cpus: 2\n  \
             #   memory: 4GiB\n"
        }
        _ => {
            "  # Compute. Sizes take KiB/MiB/GiB/TiB (powers of 1024) or KB/MB/GB/TB.\n  \
             resources:\n    \
               cpus: 2             # cores; `0.5` or \"500m\" for part of one\n    \
               memory: 4GiB\n    \
               # disk: 20GiB       # the persistent home volume\n    \
               # gpu:\n    \
               #   count: 1\n    \
               #   type: a100      # leave out to accept any model\n"
        }
    }
}

const COMMON_DEPLOYMENT: &str = "  # Ports to publish: 8080, \"8080:80\" (host:container), \"5353:53/udp\",\n  \
  # or {container: 80, host: 8080, protocol: tcp}.\n  \
  # ports:\n  \
  #   - 8080\n  \
  # Plain environment variables. Anything sensitive belongs in `secrets`.\n  \
  # env:\n  \
  #   LOG_LEVEL: info\n  \
  # Extra persistent volumes (the home directory is always kept).\n  \
  # volumes:\n  \
  #   - name: data\n  \
  #     path: /data\n  \
  #     size: 10GiB\n";

const SECRETS_AND_EXTENSIONS: &str = "\n\
# Secrets are read at deploy time and handed to the platform's secret store; their\n\
# values never appear in state, labels, plans or logs. Each becomes an environment\n\
# variable named after it, or a file with `mount: /absolute/path`.\n\
# secrets:\n\
#   - name: GITHUB_TOKEN\n\
#     source: env            # read $GITHUB_TOKEN here (or `var: OTHER_NAME`)\n\
#   - name: TLS_KEY\n\
#     source: file\n\
#     path: certs/tls.key    # relative to this file\n\
#     mount: /etc/tls/tls.key\n\
#   - name: API_KEY\n\
#     source: vault          # uses VAULT_ADDR and VAULT_TOKEN\n\
#     path: secret/data/myapp\n\
#     key: api_key\n\
\n\
# Tools installed once the environment is up: a profile plus extras.\n\
# extensions:\n\
#   profile: minimal\n\
#   active: [git, python]\n";

fn provider_section(provider: ProviderKind) -> &'static str {
    match provider {
        ProviderKind::Docker => {
            "\n# Settings for the selected provider.\n\
             providers:\n  \
               docker:\n    \
                 # Docker inside the environment: none, socket (the host's engine),\n    \
                 # privileged (its own engine) or sysbox (its own engine, unprivileged).\n    \
                 dind: none\n    \
                 # host: unix:///var/run/docker.sock   # default: DOCKER_HOST, then the docker context\n    \
                 # network: my-net                     # default: a network of its own\n"
        }
        ProviderKind::Kubernetes => {
            "\n# Settings for the selected provider.\n\
             providers:\n  \
               kubernetes:\n    \
                 # Namespace; default: the kubeconfig context's namespace, else `default`.\n    \
                 namespace: default\n    \
                 # context: my-cluster           # default: the current kubeconfig context\n    \
                 # storage_class: standard       # default: the cluster's default class\n    \
                 # service_type: ClusterIP       # or NodePort, LoadBalancer\n    \
                 # node_selector: {nvidia.com/gpu.present: \"true\"}\n"
        }
        ProviderKind::Fly => {
            "\n# Settings for the selected provider.\n\
             providers:\n  \
               fly:\n    \
                 # Regions in order of preference; on a capacity error the next is tried.\n    \
                 regions: [iad, ord]\n    \
                 # Stop or suspend the machine when idle: off, stop or suspend.\n    \
                 auto_stop: off\n    \
                 # app: my-env                   # default: the environment name\n    \
                 # org: personal\n    \
                 # cpu_kind: shared              # or performance\n    \
                 # wait_timeout: 5m              # how long deploy/start/stop wait for the machine\n"
        }
        ProviderKind::E2b => {
            "\n# Settings for the selected provider.\n\
             providers:\n  \
               e2b:\n    \
                 # Sandbox template id or alias.\n    \
                 template: base\n    \
                 # How long the sandbox lives, e.g. 30m or 1h.\n    \
                 timeout: 1h\n    \
                 # Pause instead of kill when the timeout is reached.\n    \
                 auto_pause: false\n"
        }
        ProviderKind::Devpod => {
            "\n# Settings for the selected provider.\n\
             providers:\n  \
               devpod:\n    \
                 # IDE to open, or `none`.\n    \
                 ide: none\n    \
                 # provider: aws                 # the DevPod provider; default: DevPod's default\n    \
                 # options: {AWS_REGION: eu-west-1}\n"
        }
        ProviderKind::Aws => {
            "\n# Settings for the selected provider.\n\
             providers:\n  \
               aws:\n    \
                 # Spot capacity: never (on-demand; or false), always (spot only; or\n    \
                 # true) or auto (spot, falling back to on-demand with a warning).\n    \
                 spot: never\n    \
                 # region: eu-west-1             # default: the AWS config chain\n    \
                 # instance_type: m7i.large      # default: derived from `resources`\n    \
                 # profile: default\n    \
                 # ssh_public_key: ~/.ssh/id_ed25519.pub\n"
        }
        ProviderKind::Runpod => {
            "\n# Settings for the selected provider.\n\
             providers:\n  \
               runpod:\n    \
                 # GPU types in order of preference.\n    \
                 gpu_types: [NVIDIA H100 80GB HBM3]\n    \
                 # SECURE or COMMUNITY cloud.\n    \
                 cloud_type: SECURE\n    \
                 # Interruptible (spot) pods: cheaper, may be stopped.\n    \
                 spot: false\n    \
                 # container_disk: 20GiB\n"
        }
        ProviderKind::Lyceum => {
            "\n# Settings for the selected provider.\n\
             providers:\n  \
               lyceum:\n    \
                 # Hardware profile: a100, b200, b300, h100, h200 or l40s.\n    \
                 hardware_profile: h100\n    \
                 # Spot instances: cheaper, may be reclaimed.\n    \
                 spot: false\n    \
                 # ssh_public_key: ~/.ssh/id_ed25519.pub\n    \
                 # Lyceum VMs cannot stop. After a detached `sindri run` the VM deletes\n    \
                 # itself with your API key, copied onto it for that (docs/adr/0012).\n    \
                 # self_destroy: true\n"
        }
        ProviderKind::Local => {
            "\n# Settings for the selected provider.\n\
             providers:\n  \
               local:\n    \
                 # Run in the project directory itself instead of a copy of it.\n    \
                 in_place: false\n"
        }
    }
}

const RUN_SECTION: &str = "\n\
# A batch or training job for `sindri run`.\n\
# run:\n\
#   command: python train.py --epochs 3     # or a list: [python, train.py]\n\
#   workdir: .                              # synced to the environment\n\
#   artifacts: [outputs/]                   # copied back when the run ends\n\
#   on_finish: stop                         # keep, stop or destroy\n\
#   max_duration: 12h\n\
#   max_restarts: 3                         # relaunches after an AWS spot interruption\n";
