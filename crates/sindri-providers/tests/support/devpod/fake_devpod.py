#!/usr/bin/env python3
"""A fake `devpod` CLI for sindri's DevPod provider tests.

The real DevPod cannot be installed where these tests run (no release download is
reachable), so this script implements the subset of DevPod's CLI the provider calls,
modelled on loft-sh/devpod's cmd/*.go and its docker driver:

- argument parsing as cobra/pflag does it: flags anywhere, `--flag value` and
  `--flag=value`, bool flags only as `--flag` or `--flag=true|false`, repeatable
  array flags; an unknown flag fails with `unknown flag: --x`, a missing value with
  `flag needs an argument: --x`; errors are printed as DevPod's logger prints a fatal
  error (`fatal <message>` on stderr) with exit code 1;
- DevPod's validation and messages: workspace ids of lowercase letters, digits and
  dashes, at most 48 characters; `workspace X doesn't exist`; `--ide` values;
  `--provider-option KEY=VALUE`; `couldn't find provider with name X`; `devpod stop`
  of a workspace that is not running; `devpod delete` of a workspace whose container
  is gone (needs `--force`); `devpod ssh` of a stopped or vanished workspace;
- DevPod's JSON: `status --output json` ({id, context, provider, state} with Running,
  Busy, Stopped or NotFound) and `list --output json` (the workspace configs);
- the docker provider's behaviour, for real, on this machine's Docker Engine: the
  devcontainer.json is read from the source folder (`--devcontainer-path`),
  `${localEnv:…}`, `${localWorkspaceFolder}` and `${containerWorkspaceFolder}` are
  substituted, `build` runs `docker build` relative to the devcontainer.json, the
  container gets the source folder at /workspaces/ID, the `mounts`, `containerEnv`,
  `runArgs` and DevPod's keep-alive entrypoint; `ssh --command` runs
  `docker exec … sh -c COMMAND` with stdin, stdout, stderr and the exit code passed
  through; `logs` prints the container's output; `delete` removes the container but,
  like DevPod's docker driver, not its named volumes.

State lives next to this script (`../devpod-home`), never in the user's DevPod home.
Every invocation's argv is appended to `../argv.log` (one JSON object per line) so
tests can assert on what sindri sent.
"""

import datetime
import hashlib
import json
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOME = os.path.join(ROOT, "devpod-home")
CONTEXT = "default"
VERSION = "v0.6.15"
IDES = [
    "none", "vscode", "vscode-insiders", "openvscode", "cursor", "positron", "zed",
    "codium", "fleet", "jupyternotebook", "intellij", "goland", "pycharm", "phpstorm",
    "clion", "rubymine", "rider", "webstorm", "rustrover", "dataspell",
]
ID_LABEL = "dev.containers.id"
KEEP_ALIVE = 'echo Container started\ntrap "exit 0" 15\nwhile sleep 1 & wait $!; do :; done'

GLOBAL_FLAGS = {
    "devpod-home": "string", "log-output": "string", "context": "string",
    "provider": "string", "debug": "bool", "silent": "bool", "agent-dir": "string",
}
COMMANDS = {
    "version": {},
    "up": {
        "id": "string", "ide": "string", "ide-option": "array",
        "devcontainer-path": "string", "devcontainer-image": "string",
        "devcontainer-source": "string", "provider-option": "array",
        "recreate": "bool", "reset": "bool", "workspace-env": "array",
        "workspace-env-file": "array", "init-env": "array", "open-ide": "bool",
        "configure-ssh": "bool", "ssh-config": "string", "dotfiles": "string",
        "dotfiles-script": "string", "machine": "string", "source": "string",
        "fallback-image": "string", "prebuild-repository": "array",
        "git-clone-strategy": "string", "disable-daemon": "bool",
        "gpg-agent-forwarding": "bool", "uid": "string",
    },
    "status": {"output": "string", "container-status": "bool", "timeout": "string"},
    "list": {"output": "string", "skip-pro": "bool"},
    "stop": {},
    "delete": {"force": "bool", "grace-period": "string", "ignore-not-found": "bool"},
    "ssh": {
        "command": "string", "user": "string", "workdir": "string",
        "agent-forwarding": "bool", "start-services": "bool", "send-env": "array",
        "set-env": "array", "stdio": "bool", "forward-ports": "array",
        "reverse-forward-ports": "array", "forward-ports-timeout": "string",
        "gpg-agent-forwarding": "bool", "ssh-keepalive-interval": "string",
    },
    "logs": {},
}
SHORTHANDS = {"ssh": {"L": "forward-ports", "R": "reverse-forward-ports"}}


class Fatal(Exception):
    pass


def record_argv():
    with open(os.path.join(ROOT, "argv.log"), "a", encoding="utf-8") as f:
        f.write(json.dumps({"argv": sys.argv[1:]}) + "\n")


def info(msg, stream=None):
    (stream or sys.stdout).write("info " + msg + "\n")
    (stream or sys.stdout).flush()


def parse(args):
    """Splits args into (command, flags, positionals) as cobra would."""
    if not args:
        raise Fatal("fake devpod: no command given")
    command, rest = args[0], args[1:]
    if command not in COMMANDS:
        raise Fatal('unknown command "%s" for "devpod"' % command)
    spec = dict(GLOBAL_FLAGS)
    spec.update(COMMANDS[command])
    shorts = SHORTHANDS.get(command, {})
    flags, positionals = {}, []
    i = 0
    while i < len(rest):
        a = rest[i]
        if a == "--":
            positionals.extend(rest[i + 1:])
            break
        if a.startswith("--"):
            name, eq, value = a[2:].partition("=")
            kind = spec.get(name)
            if kind is None:
                raise Fatal("unknown flag: --" + name)
            if kind == "bool":
                if eq:
                    if value.lower() in ("1", "t", "true"):
                        value = True
                    elif value.lower() in ("0", "f", "false"):
                        value = False
                    else:
                        raise Fatal('invalid argument "%s" for "--%s" flag: strconv.ParseBool: parsing "%s": invalid syntax' % (value, name, value))
                else:
                    value = True
            elif not eq:
                if i + 1 >= len(rest):
                    raise Fatal("flag needs an argument: --" + name)
                i += 1
                value = rest[i]
            if kind == "array":
                flags.setdefault(name, []).append(value)
            else:
                flags[name] = value
        elif a.startswith("-") and len(a) > 1:
            short = a[1]
            name = shorts.get(short)
            if name is None:
                raise Fatal("unknown shorthand flag: '%s' in %s" % (short, a))
            value = a[2:]
            if not value:
                if i + 1 >= len(rest):
                    raise Fatal("flag needs an argument: '%s' in -%s" % (short, short))
                i += 1
                value = rest[i]
            flags.setdefault(name, []).append(value)
        else:
            positionals.append(a)
        i += 1
    return command, flags, positionals


# ---------------------------------------------------------------- state


def workspaces_dir():
    return os.path.join(HOME, "contexts", CONTEXT, "workspaces")


def ws_dir(ws_id):
    return os.path.join(workspaces_dir(), ws_id)


def load_ws(ws_id):
    path = os.path.join(ws_dir(ws_id), "workspace.json")
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def save_ws(ws):
    os.makedirs(ws_dir(ws["id"]), exist_ok=True)
    path = os.path.join(ws_dir(ws["id"]), "workspace.json")
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(ws, f)
    os.replace(path + ".tmp", path)


def require_ws(positionals):
    if not positionals:
        raise Fatal("please specify a workspace: the fake devpod cannot select one interactively")
    ws_id = to_id(positionals[0])
    ws = load_ws(ws_id)
    if ws is None:
        raise Fatal("workspace %s doesn't exist" % ws_id)
    return ws


def to_id(name):
    if os.path.isdir(name):
        name = os.path.basename(os.path.abspath(name))
    name = name.lower()
    return re.sub(r"[^a-z0-9\-]+", "-", name).strip("-")[:48]


def providers():
    path = os.path.join(HOME, "providers.json")
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    return {"default": "docker", "providers": ["docker"]}


def now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------- docker


def docker(args, check=True, capture=True, env=None, **kw):
    p = subprocess.run(
        ["docker"] + args,
        stdout=subprocess.PIPE if capture else None,
        stderr=subprocess.PIPE if capture else None,
        env=env,
        **kw,
    )
    if check and p.returncode != 0:
        err = (p.stderr or b"").decode(errors="replace").strip()
        raise Fatal("docker %s: %s" % (args[0], err))
    return p


def container_of(ws_id):
    """(id, state) of the workspace's container, or (None, None)."""
    p = docker(["ps", "-a", "--filter", "label=%s=%s" % (ID_LABEL, ws_id), "--format", "{{.ID}} {{.State}}"])
    line = p.stdout.decode().strip().splitlines()
    if not line:
        return None, None
    cid, _, state = line[0].partition(" ")
    return cid, state


def state_of(ws_id):
    _, state = container_of(ws_id)
    if state is None:
        return "NotFound"
    if state == "running":
        return "Running"
    if state in ("created", "exited", "dead"):
        return "Stopped"
    return "Busy"


# ---------------------------------------------------------------- devcontainer


VAR = re.compile(r"\$\{(.*?)\}")


def substitute(value, ctx):
    if isinstance(value, str):
        def repl(m):
            parts = m.group(1).split(":")
            var, args = parts[0], parts[1:]
            if var in ("localEnv", "env"):
                if not args:
                    return m.group(0)
                if args[0] in os.environ:
                    return os.environ[args[0]]
                return args[1] if len(args) > 1 else ""
            if var == "localWorkspaceFolder":
                return ctx["local"]
            if var == "localWorkspaceFolderBasename":
                return os.path.basename(ctx["local"])
            if var == "containerWorkspaceFolder":
                return ctx["container"]
            if var == "containerWorkspaceFolderBasename":
                return os.path.basename(ctx["container"])
            if var == "devcontainerId":
                return ctx["id"]
            return m.group(0)
        return VAR.sub(repl, value)
    if isinstance(value, list):
        return [substitute(v, ctx) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, ctx) for k, v in value.items()}
    return value


def read_devcontainer(folder, rel):
    if rel:
        path = os.path.join(folder, rel)
        if not os.path.exists(path):
            raise Fatal("devcontainer path %s doesn't exist: stat %s: no such file or directory" % (path, path))
    else:
        path = os.path.join(folder, ".devcontainer", "devcontainer.json")
        if not os.path.exists(path):
            path = os.path.join(folder, ".devcontainer.json")
        if not os.path.exists(path):
            raise Fatal("fake devpod: no devcontainer.json in %s (the fake does not detect languages)" % folder)
    with open(path, encoding="utf-8") as f:
        try:
            return json.load(f), os.path.dirname(path)
        except json.JSONDecodeError as e:
            raise Fatal("parse devcontainer.json: %s" % e)


def mount_arg(m):
    if isinstance(m, str):
        return m
    parts = ["type=" + m.get("type", "volume")]
    if m.get("source"):
        parts.append("source=" + m["source"])
    parts.append("target=" + m["target"])
    return ",".join(parts)


def create_container(ws, recreate_log):
    ws_id = ws["id"]
    folder = ws["source"]["localFolder"]
    raw, dc_dir = read_devcontainer(folder, ws.get("devContainerPath", ""))
    container_folder = raw.get("workspaceFolder") or "/workspaces/" + ws_id
    ctx = {"local": folder, "container": container_folder, "id": ws_id}
    dc = substitute(raw, ctx)

    if "build" in dc:
        b = dc["build"]
        dockerfile = os.path.normpath(os.path.join(dc_dir, b.get("dockerfile", "Dockerfile")))
        context = os.path.normpath(os.path.join(dc_dir, b.get("context", ".")))
        if not os.path.isfile(dockerfile):
            raise Fatal("build image: dockerfile %s doesn't exist" % dockerfile)
        image = "fake-devpod-%s:latest" % ws_id
        args = ["build", "-q", "-f", dockerfile, "-t", image]
        for k, v in sorted((b.get("args") or {}).items()):
            args += ["--build-arg", "%s=%s" % (k, v)]
        if b.get("target"):
            args += ["--target", b["target"]]
        info("Building devcontainer image %s" % image, recreate_log)
        docker(args + [context])
    elif "image" in dc:
        image = dc["image"]
        if docker(["image", "inspect", image], check=False).returncode != 0:
            raise Fatal("pull image %s: the fake devpod cannot pull (no registry here)" % image)
    else:
        raise Fatal("dev container config is missing one of \"image\", \"dockerFile\" or \"dockerComposeFile\" properties")

    args = ["run", "--sig-proxy=false", "-d", "--name", "fake-devpod-" + ws_id,
            "--mount", "type=bind,source=%s,target=%s" % (folder, container_folder),
            "-l", "%s=%s" % (ID_LABEL, ws_id)]
    env = dict(os.environ)
    for k, v in sorted((dc.get("containerEnv") or {}).items()):
        args += ["--env", k]
        env[k] = v
    for m in dc.get("mounts") or []:
        args += ["--mount", mount_arg(m)]
    hr = dc.get("hostRequirements") or {}
    if hr.get("gpu") in (True, "true"):
        info("GPU support is not enabled in this Docker engine, not adding --gpus", recreate_log)
    args += list(dc.get("runArgs") or [])
    args += ["--entrypoint", "/bin/sh", image, "-c", KEEP_ALIVE, "-"]
    docker(args, env=env)
    remote_env = {k: v for k, v in (dc.get("remoteEnv") or {}).items() if v is not None}
    with open(os.path.join(ws_dir(ws_id), "remote_env.json"), "w", encoding="utf-8") as f:
        json.dump({"remoteEnv": remote_env, "workdir": container_folder}, f)


def remote_env(ws_id):
    path = os.path.join(ws_dir(ws_id), "remote_env.json")
    if not os.path.isfile(path):
        return {}, "/workspaces/" + ws_id
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    return data.get("remoteEnv", {}), data.get("workdir", "/workspaces/" + ws_id)


# ---------------------------------------------------------------- commands


def cmd_version(flags, positionals):
    print(VERSION)


def cmd_up(flags, positionals):
    desired = flags.get("id", "")
    if desired:
        if re.search(r"[^a-z0-9\-]+", desired):
            raise Fatal("workspace name can only include smaller case letters, numbers or dashes")
        if len(desired) > 48:
            raise Fatal("workspace name cannot be longer than 48 characters")
    ide = flags.get("ide", "")
    if ide and ide not in IDES:
        raise Fatal("unrecognized ide '%s', possible values are: %s" % (ide, ", ".join(IDES)))
    options = {}
    for o in flags.get("provider-option", []):
        k, eq, v = o.partition("=")
        if not eq or not k:
            raise Fatal("invalid option %s, expected format KEY=VALUE" % o)
        options[k] = v
    provs = providers()
    provider = flags.get("provider") or provs["default"]
    if provider not in provs["providers"]:
        raise Fatal("couldn't find provider with name %s. Please make sure to add the provider via 'devpod provider add'" % provider)
    if flags.get("workspace-env") or flags.get("workspace-env-file") or flags.get("init-env"):
        info("fake devpod: extra workspace env is accepted but not applied")

    ws_id = desired or (to_id(positionals[0]) if positionals else "")
    if not ws_id:
        raise Fatal("please specify a workspace: the fake devpod cannot select one interactively")
    ws = load_ws(ws_id)
    if ws is not None:
        info("Workspace %s already exists" % ws_id)
        if flags.get("devcontainer-path") and ws.get("devContainerPath") != flags["devcontainer-path"]:
            ws["devContainerPath"] = flags["devcontainer-path"]
        if options:
            ws["provider"]["options"] = {k: {"value": v} for k, v in options.items()}
    else:
        if not positionals:
            raise Fatal("workspace %s doesn't exist" % ws_id)
        source = positionals[0]
        if not os.path.isdir(source):
            raise Fatal("fake devpod: only local folder sources are supported, got %s" % source)
        uid = "%s-%s-%s" % (CONTEXT, ws_id[:2], hashlib.sha256((ws_id + now()).encode()).hexdigest()[:5])
        ws = {
            "id": ws_id,
            "uid": uid,
            "provider": {"name": provider, "options": {k: {"value": v} for k, v in options.items()}},
            "ide": {"name": ide or "none"},
            "source": {"localFolder": os.path.abspath(source)},
            "devContainerPath": flags.get("devcontainer-path", ""),
            "creationTimestamp": now(),
            "context": CONTEXT,
        }
    ws["lastUsed"] = now()
    save_ws(ws)

    cid, state = container_of(ws_id)
    recreate = flags.get("recreate") or flags.get("reset")
    if cid and recreate:
        info("Recreating devcontainer...")
        docker(["rm", "-f", cid])
        cid = None
    if cid is None:
        info("Creating devcontainer...")
        create_container(ws, sys.stdout)
    elif state != "running":
        info("Starting devcontainer...")
        docker(["start", cid])
    info("Run 'ssh %s.devpod' to ssh into the devcontainer" % ws_id)


def cmd_status(flags, positionals):
    output = flags.get("output", "plain")
    ws = require_ws(positionals)
    state = state_of(ws["id"])
    if output == "plain":
        info("Workspace '%s' is '%s'" % (ws["id"], state), sys.stderr)
    elif output == "json":
        sys.stdout.write(json.dumps({"id": ws["id"], "context": CONTEXT, "provider": ws["provider"]["name"], "state": state}))
    else:
        raise Fatal("unexpected output format, choose either json or plain. Got %s" % output)


def cmd_list(flags, positionals):
    if positionals:
        raise Fatal('unknown command "%s" for "devpod list"' % positionals[0])
    output = flags.get("output", "plain")
    items = []
    if os.path.isdir(workspaces_dir()):
        for name in sorted(os.listdir(workspaces_dir())):
            ws = load_ws(name)
            if ws is not None:
                items.append(ws)
    if output == "json":
        sys.stdout.write(json.dumps(items))
    elif output == "plain":
        for ws in items:
            print("%s\t%s\t%s" % (ws["id"], "local:" + ws["source"].get("localFolder", ""), ws["provider"]["name"]))
    else:
        raise Fatal("unexpected output format, choose either json or plain. Got %s" % output)


def cmd_stop(flags, positionals):
    ws = require_ws(positionals)
    state = state_of(ws["id"])
    if state != "Running":
        raise Fatal("cannot stop instance because it is '%s'" % state)
    cid, _ = container_of(ws["id"])
    docker(["stop", "-t", "5", cid])
    info("Successfully stopped workspace %s" % ws["id"], sys.stderr)


def cmd_delete(flags, positionals):
    if not positionals:
        raise Fatal("please specify a workspace: the fake devpod cannot select one interactively")
    ws_id = to_id(positionals[0])
    ws = load_ws(ws_id)
    if ws is None:
        if flags.get("ignore-not-found"):
            return
        raise Fatal("workspace %s doesn't exist" % ws_id)
    cid, _ = container_of(ws_id)
    if cid is None and not flags.get("force"):
        raise Fatal("cannot delete instance because it couldn't be found. Run with --force to ignore this error")
    if cid is not None:
        # DevPod's docker driver removes the container only; named volumes stay.
        docker(["rm", "-f", cid])
    for name in os.listdir(ws_dir(ws_id)):
        os.remove(os.path.join(ws_dir(ws_id), name))
    os.rmdir(ws_dir(ws_id))
    info("Successfully deleted workspace %s" % ws_id, sys.stderr)


def cmd_ssh(flags, positionals):
    if flags.get("stdio") or flags.get("forward-ports") or flags.get("reverse-forward-ports"):
        raise Fatal("fake devpod: --stdio and port forwarding are not implemented")
    ws = require_ws(positionals)
    state = state_of(ws["id"])
    if state == "Stopped":
        raise Fatal("DevPod workspace is stopped")
    if state == "NotFound":
        raise Fatal("DevPod workspace wasn't found")
    cid, _ = container_of(ws["id"])
    env_vars, workdir = remote_env(ws["id"])
    env = dict(os.environ)
    args = ["exec", "-i"]
    if sys.stdin.isatty() and sys.stdout.isatty():
        args.append("-t")
    if flags.get("user"):
        args += ["-u", flags["user"]]
    for k, v in sorted(env_vars.items()):
        args += ["--env", k]
        env[k] = v
    for k in flags.get("send-env", []):
        if k in os.environ:
            args += ["--env", k]
    for kv in flags.get("set-env", []):
        k, eq, v = kv.partition("=")
        if not eq:
            raise Fatal("invalid env var: %s" % kv)
        args += ["--env", k]
        env[k] = v
    args += ["-w", flags.get("workdir") or workdir, cid]
    command = flags.get("command", "")
    args += ["sh", "-c", command] if command else ["sh", "-l"]
    p = subprocess.run(["docker"] + args, env=env)
    sys.exit(p.returncode)


def cmd_logs(flags, positionals):
    ws = require_ws(positionals)
    cid, _ = container_of(ws["id"])
    if cid is None:
        raise Fatal("container not found")
    p = subprocess.run(["docker", "logs", cid], stdout=sys.stdout, stderr=sys.stdout)
    if p.returncode != 0:
        raise Fatal("docker logs failed")


def main():
    record_argv()
    try:
        command, flags, positionals = parse(sys.argv[1:])
        if flags.get("log-output", "plain") not in ("plain", "raw", "json"):
            raise Fatal("unrecognized log format %s, needs to be either plain or json" % flags["log-output"])
        globals()["cmd_" + command](flags, positionals)
    except Fatal as e:
        sys.stdout.flush()
        sys.stderr.write("fatal %s\n" % e)
        sys.exit(1)


if __name__ == "__main__":
    main()
