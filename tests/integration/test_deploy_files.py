#!/usr/bin/env python3
"""Checks of the deployment files: docker-compose.yml, Dockerfile, .dockerignore,
deploy/systemd/mailroom-consumer@.service, deploy/systemd/mailroom.env.example,
deploy/systemd/mailroom-webhook@.service, deploy/systemd/webhook.env.example and
deploy/secrets/mailroom_keys.example.

    /usr/bin/python3 tests/integration/test_deploy_files.py

No Docker engine and no systemd instance are needed. `docker-compose config -q`
(Debian's docker-compose package) validates the compose file and is skipped, with a
message, only when docker-compose is not installed; `systemd-analyze verify` and
`systemd-analyze security --offline` (systemd >= 250) check the unit when
systemd-analyze exists (scripts/bootstrap installs it: Debian package systemd).
MAILROOM_BIN_DIR (set by ctest) names the build's bin directory; the unit is verified
against the mailroom-consumer found there.
"""
import os
import re
import shutil
import subprocess
import tempfile
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COMPOSE = os.path.join(ROOT, "docker-compose.yml")
DOCKERFILE = os.path.join(ROOT, "Dockerfile")
DOCKERIGNORE = os.path.join(ROOT, ".dockerignore")
UNIT = os.path.join(ROOT, "deploy", "systemd", "mailroom-consumer@.service")
ENV_EXAMPLE = os.path.join(ROOT, "deploy", "systemd", "mailroom.env.example")
KEYS_EXAMPLE = os.path.join(ROOT, "deploy", "secrets", "mailroom_keys.example")
DEPLOY_README = os.path.join(ROOT, "deploy", "README.md")
WEBHOOK_UNIT = os.path.join(ROOT, "deploy", "systemd", "mailroom-webhook@.service")
WEBHOOK_ENV = os.path.join(ROOT, "deploy", "systemd", "webhook.env.example")

# Environment variables that must never carry a secret value in a committed file.
SECRET_VARS = ("MAILROOM_SECRET", "MAILROOM_SMTP_PASSWORD", "MAILROOM_REDIS_PASSWORD")


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def duration_s(text):
    """'45s', '1m30s', '2m', '500ms', '30' (seconds) -> seconds as a float."""
    text = str(text).strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s|d)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError("not a duration: %r" % text)
    scale = {"us": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600, "d": 86400}
    return sum(float(n) * scale[u] for n, u in parts)


def option_value(argv, name, default=None):
    """The value of --name in an argument list (or one string), else default."""
    if isinstance(argv, str):
        argv = argv.split()
    argv = [str(a) for a in argv]
    for i, a in enumerate(argv):
        if a == name and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
    return default


def load_compose():
    try:
        import yaml
    except ImportError:  # pragma: no cover
        raise AssertionError("python3-yaml is needed to read docker-compose.yml "
                             "(Debian package python3-yaml)")
    with open(COMPOSE, encoding="utf-8") as f:
        return yaml.safe_load(f)


def env_dict(service):
    env = service.get("environment") or {}
    if isinstance(env, list):
        out = {}
        for item in env:
            k, _, v = str(item).partition("=")
            out[k] = v
        return out
    return {str(k): ("" if v is None else str(v)) for k, v in env.items()}


class ComposeFile(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.text = read(COMPOSE)
        cls.doc = load_compose()
        cls.services = cls.doc.get("services") or {}

    def compose_env(self):
        env = dict(os.environ)
        for k in ("MAILROOM_KEYS_SECRET_FILE", "MAILROOM_REDIS_PORT", "COMPOSE_FILE",
                  "COMPOSE_PROFILES", "COMPOSE_PROJECT_NAME"):
            env.pop(k, None)
        return env

    def test_docker_compose_config(self):
        exe = shutil.which("docker-compose")
        if not exe:
            self.skipTest("docker-compose not installed (Debian package docker-compose): "
                          "compose file not validated by docker-compose")
        for extra in ([], ["--profile", "demo"], ["--profile", "webhook"]):
            cmd = [exe, "-f", COMPOSE] + extra + ["config", "-q"]
            r = subprocess.run(cmd, cwd=ROOT, env=self.compose_env(), capture_output=True,
                               text=True, timeout=120)
            self.assertEqual(r.returncode, 0, "%s failed:\n%s%s" % (" ".join(cmd), r.stdout, r.stderr))
        r = subprocess.run([exe, "-f", COMPOSE, "--profile", "demo", "config", "--services"],
                           cwd=ROOT, env=self.compose_env(), capture_output=True, text=True,
                           timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(set(r.stdout.split()),
                         {"redis", "mailcatcher", "consumer", "producer", "webhook"})

    def test_services(self):
        self.assertEqual(set(self.services),
                         {"redis", "mailcatcher", "consumer", "producer", "webhook"})

    def test_webhook(self):
        w = self.services["webhook"]
        self.assertIn("webhook", w.get("profiles") or [], "the webhook must not start by default")
        self.assertEqual(w.get("image"), self.services["consumer"].get("image"))
        self.assertEqual(list(w.get("entrypoint") or []), ["mailroom-webhook"])
        env = env_dict(w)
        self.assertTrue(env.get("MAILROOM_WEBHOOK_SECRET_FILE", "").startswith("/run/secrets/"))
        secret_name = env["MAILROOM_WEBHOOK_SECRET_FILE"].rsplit("/", 1)[1]
        names = [x if isinstance(x, str) else x.get("source") for x in w.get("secrets") or []]
        self.assertIn(secret_name, names)
        placeholder = self.doc["secrets"][secret_name]["file"]
        m = re.search(r":-([^}]+)\}", placeholder)
        self.assertIsNotNone(m, placeholder)
        lines = [l for l in read(os.path.join(ROOT, m.group(1))).splitlines()
                 if l.strip() and not l.startswith("#")]
        self.assertTrue(lines and all(re.search(r"(?i)example|change", l) for l in lines))
        self.assertGreaterEqual(duration_s(w["stop_grace_period"]), 15)

    def test_no_container_names(self):
        # `docker compose up --scale consumer=3` needs distinct generated names.
        for name, svc in self.services.items():
            self.assertNotIn("container_name", svc, "service %s sets container_name" % name)

    def test_no_inline_secrets(self):
        for var in SECRET_VARS:
            self.assertIsNone(re.search(r"\b%s\s*[:=]" % var, self.text),
                              "%s is given a value in docker-compose.yml" % var)
        for name, svc in self.services.items():
            for k, v in env_dict(svc).items():
                if k.endswith("_FILE"):
                    continue
                self.assertNotRegex(k, r"SECRET|PASSWORD|TOKEN|KEY",
                                    "service %s sets %s inline" % (name, k))
                self.assertNotRegex(v, r"^rediss?://[^/@]*:[^/@]*@",
                                    "service %s has a password in a URL" % name)

    def test_redis(self):
        redis = self.services["redis"]
        self.assertRegex(str(redis.get("image")), r"^redis:7(\.|$)")
        cmd = redis.get("command")
        cmd = cmd.split() if isinstance(cmd, str) else [str(c) for c in cmd or []]
        self.assertEqual(option_value(cmd, "--appendonly"), "yes", "redis without appendonly")
        self.assertEqual(option_value(cmd, "--appendfsync"), "everysec")
        self.assertIn("healthcheck", redis)
        self.assertIn("redis-cli", " ".join(map(str, redis["healthcheck"]["test"])))
        volumes = [str(v) for v in redis.get("volumes") or []]
        named = [v for v in volumes if v.endswith(":/data") and not v.startswith((".", "/"))]
        self.assertTrue(named, "redis /data is not a named volume: %s" % volumes)
        self.assertIn(named[0].split(":")[0], self.doc.get("volumes") or {})
        for p in redis.get("ports") or []:
            self.assertTrue(str(p).startswith("127.0.0.1:"), "redis published beyond loopback: %s" % p)

    def test_mailcatcher(self):
        mc = self.services["mailcatcher"]
        self.assertTrue(str(mc.get("image")).startswith("axllent/mailpit"))
        ports = [str(p) for p in mc.get("ports") or []]
        for p in ports:
            self.assertTrue(p.startswith("127.0.0.1:"), "mailcatcher port beyond loopback: %s" % p)
        targets = {p.rsplit(":", 1)[1].split("/")[0] for p in ports}
        self.assertEqual(targets, {"1025", "8025"})

    def test_consumer(self):
        c = self.services["consumer"]
        self.assertIn("build", c)
        env = env_dict(c)
        self.assertEqual(env.get("MAILROOM_REDIS_URL"), "redis://redis:6379/0")
        self.assertEqual(env.get("MAILROOM_SMTP_URL"), "smtp://mailcatcher:1025")
        self.assertEqual(env.get("MAILROOM_SMTP_TLS"), "none")
        self.assertTrue(env.get("MAILROOM_KEYS_FILE", "").startswith("/run/secrets/"))
        secret_name = env["MAILROOM_KEYS_FILE"].rsplit("/", 1)[1]
        names = [s if isinstance(s, str) else s.get("source") for s in c.get("secrets") or []]
        self.assertIn(secret_name, names)
        self.assertIn(secret_name, self.doc.get("secrets") or {})
        self.assertIn("file", self.doc["secrets"][secret_name])
        self.assertEqual(c["depends_on"]["redis"]["condition"], "service_healthy")
        self.assertEqual(c.get("restart"), "unless-stopped")
        shutdown = duration_s(option_value(c.get("command") or [], "--shutdown-timeout", "30s"))
        self.assertIn("stop_grace_period", c)
        self.assertGreater(duration_s(c["stop_grace_period"]), shutdown,
                           "stop_grace_period must exceed --shutdown-timeout")

    def test_producer_demo(self):
        p = self.services["producer"]
        self.assertIn("demo", p.get("profiles") or [])
        entry = p.get("entrypoint")
        entry = entry.split() if isinstance(entry, str) else list(entry or [])
        self.assertEqual(entry, ["mailroom"])
        cmd = [str(a) for a in p.get("command") or []]
        self.assertEqual(cmd[:1], ["send"])
        self.assertEqual(option_value(cmd, "--wait"), "30")
        self.assertEqual(p.get("image"), self.services["consumer"].get("image"),
                         "producer and consumer should share one image")
        self.assertTrue(env_dict(p).get("MAILROOM_KEYS_FILE", "").startswith("/run/secrets/"))

    def test_example_key_is_a_placeholder(self):
        default = re.search(r"MAILROOM_KEYS_SECRET_FILE:-([^}]+)\}", self.text)
        self.assertIsNotNone(default, "the secret file has no default path")
        self.assertEqual(os.path.normpath(os.path.join(ROOT, default.group(1))), KEYS_EXAMPLE)
        lines = [l.strip() for l in read(KEYS_EXAMPLE).splitlines()]
        keys = [l.split(None, 1) for l in lines if l and not l.startswith("#")]
        self.assertTrue(keys, "no key line in %s" % KEYS_EXAMPLE)
        for kid, secret in keys:
            self.assertGreaterEqual(len(secret.strip().encode()), 16)
            self.assertRegex(secret, r"(?i)example|not-a-secret|placeholder|change",
                             "the example key must look fake")


def dockerfile_stages():
    """[(base, alias, [(instruction, args), ...]), ...] with continuation lines joined."""
    logical, cur = [], ""
    for raw in read(DOCKERFILE).splitlines():
        line = raw.strip()
        if not cur and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            cur += line[:-1] + " "
            continue
        logical.append(cur + line)
        cur = ""
    stages = []
    for line in logical:
        instr, _, args = line.partition(" ")
        instr = instr.upper()
        if instr == "FROM":
            words = args.split()
            words = [w for w in words if not w.startswith("--platform")]
            alias = words[2] if len(words) >= 3 and words[1].lower() == "as" else None
            stages.append((words[0], alias, []))
        elif stages:
            stages[-1][2].append((instr, args.strip()))
    return stages


class DockerfileChecks(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.stages = dockerfile_stages()

    def test_multi_stage_on_bookworm_slim(self):
        self.assertGreaterEqual(len(self.stages), 2)
        for base, alias, _ in self.stages:
            self.assertEqual(base, "debian:bookworm-slim", "stage %s" % alias)

    def test_build_stage(self):
        run = " ".join(a for i, a in self.stages[0][2] if i == "RUN")
        for pkg in ("libhiredis-dev", "libjson-c-dev", "libssl-dev", "libidn2-dev",
                    "cmake", "gcc", "make", "pkg-config"):
            self.assertRegex(run, r"(^|\s)%s(\s|$)" % re.escape(pkg))
        self.assertIn("-DMAILROOM_BUILD_TESTS=OFF", run)
        self.assertIn("-DBUILD_TESTING=OFF", run)
        self.assertIn("cmake --install", run)

    def test_final_stage(self):
        base, _, instrs = self.stages[-1]
        self.assertEqual(base, "debian:bookworm-slim")
        run = " ".join(a for i, a in instrs if i == "RUN")
        for pkg in ("libhiredis0.14", "libjson-c5", "libssl3", "libidn2-0", "ca-certificates"):
            self.assertRegex(run, r"(^|\s)%s(\s|$)" % re.escape(pkg))
        self.assertNotRegex(run, r"-dev(\s|$)|\bgcc\b|\bcmake\b|build-essential",
                            "build tools in the runtime stage")
        users = [a for i, a in instrs if i == "USER"]
        self.assertTrue(users, "the final stage has no USER")
        user = users[-1].split(":")[0]
        self.assertNotIn(user, ("root", "0"), "the final stage runs as root")
        self.assertRegex(run, r"useradd\b.*--uid\s+\d+", "the user has no fixed uid")
        entry = [a for i, a in instrs if i == "ENTRYPOINT"]
        self.assertEqual(entry[-1:], ['["mailroom-consumer"]'])
        copies = " ".join(a for i, a in instrs if i == "COPY")
        self.assertIn("--from=", copies)

    def test_no_secrets_copied(self):
        for _, _, instrs in self.stages:
            for i, a in instrs:
                if i in ("COPY", "ADD"):
                    self.assertNotIn("secrets", a)
                if i in ("ENV", "ARG"):
                    for var in SECRET_VARS:
                        self.assertNotIn(var, a)

    def test_dockerignore(self):
        entries = {l.strip().rstrip("/") for l in read(DOCKERIGNORE).splitlines()
                   if l.strip() and not l.startswith("#")}
        for want in (".git", "build", "build-*", "deploy/secrets"):
            self.assertIn(want, entries)


def unit_directives(text):
    """[(section, key, value)] in file order; repeated keys stay separate."""
    out, section = [], None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        k, _, v = line.partition("=")
        out.append((section, k.strip(), v.strip()))
    return out


def systemd_version(exe):
    """The systemd version `systemd-analyze --version` reports ("systemd 252 (...)"),
    or None when it cannot be read."""
    r = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30)
    m = re.match(r"systemd (\d+)\b", r.stdout)
    return int(m.group(1)) if m else None


class SystemdUnit(unittest.TestCase):
    HARDENING = {
        "DynamicUser": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
        "PrivateTmp": "yes", "PrivateDevices": "yes", "NoNewPrivileges": "yes",
        "ProtectKernelTunables": "yes", "ProtectKernelModules": "yes",
        "ProtectKernelLogs": "yes", "ProtectControlGroups": "yes",
        "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX", "RestrictNamespaces": "yes",
        "LockPersonality": "yes", "MemoryDenyWriteExecute": "yes",
        "SystemCallFilter": "@system-service", "SystemCallArchitectures": "native",
        "CapabilityBoundingSet": "", "KillSignal": "SIGTERM", "Restart": "on-failure",
    }

    @classmethod
    def setUpClass(cls):
        cls.text = read(UNIT)
        cls.directives = unit_directives(cls.text)
        cls.service = [(k, v) for s, k, v in cls.directives if s == "Service"]

    def values(self, key):
        return [v for k, v in self.service if k == key]

    def test_hardening(self):
        for key, want in self.HARDENING.items():
            got = self.values(key)
            self.assertTrue(got, "[Service] has no %s=" % key)
            self.assertEqual(got[-1], want, "%s=%s, want %s" % (key, got[-1], want))

    def test_credentials_and_environment(self):
        self.assertEqual(self.values("EnvironmentFile"), ["/etc/mailroom/consumer.env"])
        creds = self.values("LoadCredential")
        self.assertIn("keys:/etc/mailroom/keys", creds)
        self.assertIn("smtp-password:/etc/mailroom/smtp-password", creds)
        env = " ".join(self.values("Environment")).split()
        self.assertIn("MAILROOM_KEYS_FILE=%d/keys", env)
        self.assertIn("MAILROOM_SMTP_PASSWORD_FILE=%d/smtp-password", env)

    def test_execstart_and_stop_timeout(self):
        execs = self.values("ExecStart")
        self.assertEqual(len(execs), 1)
        argv = execs[0].split()
        self.assertTrue(argv[0].endswith("/mailroom-consumer"))
        self.assertEqual(option_value(argv, "--id"), "%H-%i")
        shutdown = duration_s(option_value(argv, "--shutdown-timeout", "30s"))
        stop = self.values("TimeoutStopSec")
        self.assertTrue(stop, "no TimeoutStopSec=")
        self.assertGreater(duration_s(stop[-1]), shutdown,
                           "TimeoutStopSec must exceed --shutdown-timeout")

    def test_no_secret_values(self):
        for var in SECRET_VARS:
            for path in (UNIT, ENV_EXAMPLE):
                self.assertIsNone(re.search(r"^\s*(Environment=.*\b)?%s=" % var, read(path), re.M),
                                  "%s sets %s" % (path, var))
        for k, v in self.service:
            if k == "Environment":
                for assignment in v.split():
                    name = assignment.split("=", 1)[0]
                    self.assertTrue(name.endswith("_FILE") or not re.search(
                        r"SECRET|PASSWORD|TOKEN", name), "unit sets %s inline" % name)

    def test_env_example(self):
        settings = {}
        for line in read(ENV_EXAMPLE).splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                k, _, v = line.partition("=")
                settings[k.strip()] = v.strip()
        self.assertIn("MAILROOM_REDIS_URL", settings)
        self.assertIn("MAILROOM_SMTP_URL", settings)
        self.assertNotRegex(settings["MAILROOM_REDIS_URL"], r"://[^/@]*:[^/@]*@",
                            "a password in the example Redis URL")
        # These would override the unit's Environment= (EnvironmentFile= wins).
        for k in ("MAILROOM_KEYS_FILE", "MAILROOM_SMTP_PASSWORD_FILE", "MAILROOM_SECRET"):
            self.assertNotIn(k, settings)
        # Every variable it sets is one the programs read.
        sources = ""
        for d in ("consumer", "common"):
            for name in os.listdir(os.path.join(ROOT, d)):
                if name.endswith(".c"):
                    sources += read(os.path.join(ROOT, d, name))
        for k in settings:
            self.assertIn('"%s"' % k, sources, "%s is not read by mailroom-consumer" % k)

    def consumer_binary(self):
        for d in (os.environ.get("MAILROOM_BIN_DIR"), os.path.join(ROOT, "build", "bin")):
            if d and os.access(os.path.join(d, "mailroom-consumer"), os.X_OK):
                return os.path.abspath(os.path.join(d, "mailroom-consumer"))
        return None

    def verifiable_copy(self, tmp):
        """The unit with ExecStart pointing at an existing binary (verify checks it)."""
        binary = self.consumer_binary() or shutil.which("true")
        text = self.text.replace("/usr/local/bin/mailroom-consumer", binary)
        path = os.path.join(tmp, "mailroom-consumer@.service")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path

    def test_systemd_analyze_verify(self):
        exe = shutil.which("systemd-analyze")
        if not exe:
            self.skipTest("systemd-analyze not installed: unit not verified")
        with tempfile.TemporaryDirectory() as tmp:
            unit = self.verifiable_copy(tmp)
            instance = os.path.join(tmp, "mailroom-consumer@1.service")
            shutil.copy(unit, instance)
            for path in (unit, instance):
                r = subprocess.run([exe, "verify", path], cwd=tmp, capture_output=True,
                                   text=True, timeout=120)
                out = r.stdout + r.stderr
                self.assertEqual(r.returncode, 0, "systemd-analyze verify %s:\n%s" % (path, out))
                # Unknown or misspelt directives are only warnings: fail on them too.
                ours = [l for l in out.splitlines() if "mailroom-consumer" in l or tmp in l]
                self.assertEqual(ours, [], "systemd-analyze verify warned:\n%s" % "\n".join(ours))

    def test_systemd_analyze_security(self):
        exe = shutil.which("systemd-analyze")
        if not exe:
            self.skipTest("systemd-analyze not installed: exposure not measured")
        with tempfile.TemporaryDirectory() as tmp:
            self.verifiable_copy(tmp)
            instance = os.path.join(tmp, "mailroom-consumer@1.service")
            shutil.copy(os.path.join(tmp, "mailroom-consumer@.service"), instance)
            version = systemd_version(exe)
            if version is not None and version < 250:
                self.skipTest("systemd-analyze %d has no --offline (systemd < 250)" % version)
            r = subprocess.run([exe, "security", "--offline=true", "--no-pager", instance],
                               cwd=tmp, capture_output=True, text=True, timeout=120)
            m = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", r.stdout)
            self.assertIsNotNone(m, "no exposure level:\n%s%s" % (r.stdout, r.stderr))
            self.assertLessEqual(float(m.group(1)), 2.0, "exposure %s > 2.0" % m.group(1))


class WebhookUnit(unittest.TestCase):
    """deploy/systemd/mailroom-webhook@.service: the consumer unit's hardening, the
    secret as a credential, the queue as the instance; systemd-analyze verify and
    security --offline as for the consumer's unit."""

    @classmethod
    def setUpClass(cls):
        cls.text = read(WEBHOOK_UNIT)
        cls.service = [(k, v) for s, k, v in unit_directives(cls.text) if s == "Service"]

    def values(self, key):
        return [v for k, v in self.service if k == key]

    def test_hardening_and_credentials(self):
        for key, want in SystemdUnit.HARDENING.items():
            got = self.values(key)
            self.assertTrue(got, "[Service] has no %s=" % key)
            self.assertEqual(got[-1], want, "%s=%s, want %s" % (key, got[-1], want))
        self.assertIn("webhook-secret:/etc/mailroom/webhook-secret", self.values("LoadCredential"))
        self.assertIn("MAILROOM_WEBHOOK_SECRET_FILE=%d/webhook-secret",
                      " ".join(self.values("Environment")).split())
        argv = self.values("ExecStart")[0].split()
        self.assertTrue(argv[0].endswith("/mailroom-webhook"))
        self.assertEqual((option_value(argv, "--queue"), option_value(argv, "--id")),
                         ("%i", "%H"))
        self.assertGreater(duration_s(self.values("TimeoutStopSec")[-1]), 10)

    def test_env_example(self):
        settings = dict(l.split("=", 1) for l in read(WEBHOOK_ENV).splitlines()
                        if l.strip() and not l.startswith("#"))
        self.assertIn("MAILROOM_WEBHOOK_URL", settings)
        self.assertNotRegex(settings["MAILROOM_WEBHOOK_URL"], r"://[^/@]*@")
        for k in ("MAILROOM_WEBHOOK_SECRET", "MAILROOM_WEBHOOK_SECRET_FILE"):
            self.assertNotIn(k, settings)
        sources = "".join(read(os.path.join(ROOT, "webhook", n))
                          for n in os.listdir(os.path.join(ROOT, "webhook")) if n.endswith(".c"))
        for k in settings:
            self.assertIn('"%s"' % k, sources, "%s is not read by mailroom-webhook" % k)

    def test_systemd_analyze(self):
        exe = shutil.which("systemd-analyze")
        if not exe:
            self.skipTest("systemd-analyze not installed: unit not verified")
        binary = os.path.join(os.environ.get("MAILROOM_BIN_DIR") or
                              os.path.join(ROOT, "build", "bin"), "mailroom-webhook")
        if not os.access(binary, os.X_OK):
            binary = shutil.which("true")
        with tempfile.TemporaryDirectory() as tmp:
            text = self.text.replace("/usr/local/bin/mailroom-webhook", os.path.abspath(binary))
            for name in ("mailroom-webhook@.service", "mailroom-webhook@default.service"):
                with open(os.path.join(tmp, name), "w", encoding="utf-8") as f:
                    f.write(text)
            instance = os.path.join(tmp, "mailroom-webhook@default.service")
            r = subprocess.run([exe, "verify", instance], cwd=tmp, capture_output=True,
                               text=True, timeout=120)
            out = r.stdout + r.stderr
            self.assertEqual(r.returncode, 0, out)
            self.assertEqual([l for l in out.splitlines() if "mailroom-webhook" in l or tmp in l],
                             [], out)
            version = systemd_version(exe)
            if version is not None and version < 250:
                self.skipTest("systemd-analyze %d has no --offline" % version)
            r = subprocess.run([exe, "security", "--offline=true", "--no-pager", instance],
                               cwd=tmp, capture_output=True, text=True, timeout=120)
            m = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", r.stdout)
            self.assertIsNotNone(m, r.stdout + r.stderr)
            self.assertLessEqual(float(m.group(1)), 2.0)


class DeployReadme(unittest.TestCase):
    def test_mentions_the_essentials(self):
        text = read(DEPLOY_README)
        for want in ("--scale consumer=", "mailroom-consumer@", "deploy/secrets/mailroom_keys.example",
                     "MAILROOM_KEYS_SECRET_FILE", "LoadCredential", "/etc/mailroom/consumer.env",
                     "MAILROOM_REDIS_URL", "MAILROOM_SMTP_URL", "MAILROOM_SMTP_TLS",
                     "MAILROOM_KEYS_FILE", "MAILROOM_SMTP_PASSWORD_FILE"):
            self.assertIn(want, text)


if __name__ == "__main__":
    unittest.main(verbosity=2)
