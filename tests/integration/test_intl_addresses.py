#!/usr/bin/python3
"""International addresses (issue 13, item 5), end to end: IDN domains go out on the
envelope and in the headers as A-labels, UTF-8 local parts go out with SMTPUTF8 and in
RFC 6532 headers, and a server without SMTPUTF8 gets nothing (the job ends `failed`
with the reason). The C validator and the PHP producer apply the same address rules.

  DeliveryTest   `mailroom send` (and the PHP producer) -> Redis -> mailroom-consumer ->
                 an aiosmtpd server that records each envelope (MAIL FROM parameters
                 included), with and without SMTPUTF8
  SameRulesTest  C (`mailroom send --jsonl`, which validates every line before sending
                 anything) and PHP (Mailroom::validate, Mailroom::envelopeAddress) give
                 the same verdict on some 120 000 addresses: every BMP code point as a
                 domain label, random labels mixing scripts, joiners, marks and digits,
                 A-labels good and bad, local parts, and the length limits; and both
                 accept every address of the signing vectors

Run: /usr/bin/python3 tests/integration/test_intl_addresses.py [-v] [TestClass.test_name]
Binaries come from $MAILROOM_BIN_DIR (default <repo>/build/bin). The PHP parts are
skipped when php, php-redis or php-intl is missing (scripts/bootstrap installs them).
"""

import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import unittest

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/

from support.case import ServerTestCase  # noqa: E402
from support.consumer import mailroom_env, run_cli  # noqa: E402
from support.jobs import new_secret  # noqa: E402
from support.messages import parse_message  # noqa: E402
from support.paths import REPO_ROOT  # noqa: E402
from support.procs import free_port, run, wait_for  # noqa: E402
from support.smtp_receiver import SmtpServer  # noqa: E402

SECRET = new_secret()
MAILROOM_PHP = REPO_ROOT / "examples" / "registration" / "mailroom.php"
VECTORS = REPO_ROOT / "tests" / "vectors" / "signing.json"
PHP = shutil.which("php")

# The A-label forms every test below relies on (libidn2 and ICU agree on them).
ZH = "例子.测试"
ZH_ACE = "xn--fsqu00a.xn--0zwm56d"
DE = "Bücher.de"
DE_ACE = "xn--bcher-kva.de"


def php_missing(*, intl: bool = True, redis: bool = True) -> str | None:
    """Why the PHP checks cannot run here, or None."""
    if not PHP:
        return "php (php-cli) is not installed"
    cp = subprocess.run([PHP, "-m"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    mods = {line.strip().lower() for line in cp.stdout.decode().splitlines()}
    if redis and "redis" not in mods:
        return "the PHP redis extension (php-redis) is not loaded"
    if intl and "intl" not in mods:
        return "the PHP intl extension (php-intl) is not loaded"
    return None


# --------------------------------------------------------------------------- the server


class EnvelopeMessage:
    def __init__(self, mail_from, mail_options, rcpt_tos, raw):
        self.mail_from = mail_from
        self.mail_options = mail_options
        self.rcpt_tos = rcpt_tos
        self.raw = raw


class _EnvelopeHandler:
    """Accepts everything and keeps each message with its MAIL FROM parameters."""

    def __init__(self, server):
        self.server = server

    async def handle_DATA(self, server, session, envelope):
        m = EnvelopeMessage(envelope.mail_from, list(envelope.mail_options),
                            list(envelope.rcpt_tos), bytes(envelope.original_content or b""))
        with self.server.cond:
            self.server.messages.append(m)
            self.server.cond.notify_all()
        return "250 2.0.0 Ok: queued as INTL1"


class EnvelopeServer(SmtpServer):
    """aiosmtpd on 127.0.0.1:<free port>, offering SMTPUTF8 or not, recording every
    message's envelope (sender, MAIL parameters, recipients) and raw bytes."""

    def __init__(self, smtputf8: bool):
        self.messages = []
        self.cond = threading.Condition()
        super().__init__(_EnvelopeHandler(self), enable_SMTPUTF8=smtputf8)

    def wait_for_count(self, n: int, timeout: float = 20.0) -> list:
        wait_for(lambda: len(self.messages) >= n, timeout, message=f"{n} messages")
        with self.cond:
            return list(self.messages)


# --------------------------------------------------------------------------- delivery


class DeliveryTest(ServerTestCase):

    def servers(self, smtputf8: bool):
        rs = self.redis()
        smtp = self.stack.enter_context(EnvelopeServer(smtputf8))
        env = mailroom_env(rs, secret=SECRET, smtp=smtp)
        self.start_consumer(env, "--block-timeout", "250ms")
        return rs.client(), smtp, env

    def header_bytes(self, raw: bytes, name: bytes) -> bytes:
        """The unfolded value of header name, as raw bytes."""
        head = raw.split(b"\r\n\r\n", 1)[0].replace(b"\r\n ", b" ")
        for line in head.split(b"\r\n"):
            if line.lower().startswith(name.lower() + b":"):
                return line[len(name) + 1:].strip()
        self.fail(f"no {name!r} header in {head!r}")

    def test_idn_domains_go_out_as_a_labels(self):
        """An IDN sender and IDN recipients: MAIL FROM and RCPT TO carry A-labels, no
        SMTPUTF8 although the server offers it, and a 7-bit message whose From, To and
        Message-ID carry the A-labels too; the record says sent."""
        r, smtp, env = self.servers(smtputf8=True)
        job_id = self.send(env, "--from-name", "例子", to=[f"王小明 <ming@{ZH}>", f"info@{DE}"],
                           sender=f"noreply@{ZH}", subject="请激活您的账户")
        m = smtp.wait_for_count(1)[0]
        self.assertEqual(m.mail_from, f"noreply@{ZH_ACE}")
        self.assertEqual(m.rcpt_tos, [f"ming@{ZH_ACE}", f"info@{DE_ACE}"])
        self.assertNotIn("SMTPUTF8", m.mail_options)
        self.assertTrue(m.raw.isascii(), "8-bit bytes in a message that needs no SMTPUTF8")
        self.assertEqual(self.header_bytes(m.raw, b"To"),
                         f"=?UTF-8?B?546L5bCP5piO?= <ming@{ZH_ACE}>, info@{DE_ACE}".encode())
        self.assertEqual(self.header_bytes(m.raw, b"From"),
                         f"=?UTF-8?B?5L6L5a2Q?= <noreply@{ZH_ACE}>".encode())
        self.assertEqual(self.header_bytes(m.raw, b"Message-ID"),
                         f"<{job_id}@{ZH_ACE}>".encode())
        msg = parse_message(m.raw)
        self.assertEqual([(a.display_name, a.addr_spec) for a in msg["To"].addresses],
                         [("王小明", f"ming@{ZH_ACE}"), ("", f"info@{DE_ACE}")])
        rec = self.wait_state(r, job_id, "sent")
        self.assert_shown_as_given(rec, {f"ming@{ZH}", f"info@{DE}"})

    def assert_shown_as_given(self, rec: dict, addresses: set):
        """The record names recipients as the job gives them (decoded), never by their
        envelope forms."""
        self.assertNotIn("xn--", json.dumps(rec, ensure_ascii=False))
        if rec.get("recipients"):
            self.assertEqual(set(json.loads(rec["recipients"])), addresses, rec)

    def test_utf8_local_part_goes_out_with_smtputf8(self):
        """A UTF-8 local part: MAIL FROM with SMTPUTF8, the local part unchanged and the
        domains as A-labels on the envelope; in the headers that address is raw UTF-8
        (RFC 6532) while the IDN-only one keeps its A-labels; the record says sent."""
        r, smtp, env = self.servers(smtputf8=True)
        job_id = self.send(env, to=[f"用户 <用户@{ZH}>", f"ming@{ZH}"],
                           sender="noreply@example.com", subject="SMTPUTF8")
        m = smtp.wait_for_count(1)[0]
        self.assertIn("SMTPUTF8", m.mail_options)
        self.assertEqual(m.mail_from, "noreply@example.com")
        self.assertEqual(m.rcpt_tos, [f"用户@{ZH_ACE}", f"ming@{ZH_ACE}"])
        self.assertEqual(self.header_bytes(m.raw, b"To"),
                         f"=?UTF-8?B?55So5oi3?= <用户@{ZH}>, ming@{ZH_ACE}".encode())
        head, body = m.raw.split(b"\r\n\r\n", 1)
        self.assertTrue(body.isascii(), "the body is not 7-bit")
        for line in head.split(b"\r\n"):
            if not line.startswith(b"To:") and not line.startswith(b" "):
                self.assertTrue(line.isascii(), f"8-bit bytes outside To: {line!r}")
        rec = self.wait_state(r, job_id, "sent")
        self.assert_shown_as_given(rec, {f"用户@{ZH}", f"ming@{ZH}"})

    def test_utf8_local_part_fails_without_smtputf8(self):
        """A server that does not offer SMTPUTF8 cannot take a UTF-8 local part: the
        job ends failed (no retry) with a reason that names SMTPUTF8, and nothing is
        delivered. Another job, IDN only, still goes through the same server."""
        r, smtp, env = self.servers(smtputf8=False)
        job_id = self.send(env, to=["pelé@example.com"], subject="no SMTPUTF8")
        rec = self.wait_state(r, job_id, ("failed", "sent", "retrying"), timeout=20)
        self.assertEqual(rec["state"], "failed", rec)
        self.assertIn("SMTPUTF8", rec.get("error", ""), rec)
        self.assertEqual(rec.get("attempts"), "1", rec)
        ok_id = self.send(env, to=[f"ming@{ZH}"], subject="IDN only")
        m = smtp.wait_for_count(1)[0]
        self.assertEqual(m.rcpt_tos, [f"ming@{ZH_ACE}"])
        self.wait_state(r, ok_id, "sent")
        self.assertEqual(len(smtp.messages), 1, "the UTF-8 local part was delivered")

    def test_php_producer_sends_international_addresses(self):
        """The PHP producer accepts and signs IDN and UTF-8 addresses; the consumer
        delivers them as the C producer's."""
        why = php_missing()
        if why:
            self.skipTest(why)
        r, smtp, env = self.servers(smtputf8=True)
        snippet = r"""
require getenv('MAILROOM_PHP');
$m = new Mailroom(Mailroom::connect(), 'default', 'default', getenv('MAILROOM_SECRET'));
echo $m->send(['to' => ['王小明 <ming@例子.测试>', 'josé@Bücher.de'], 'from' => 'noreply@例子.测试',
               'subject' => 'PHP', 'text' => "x\n"]), "\n";
"""
        rc, out, err = run([PHP, "-r", snippet], env={**env, "MAILROOM_PHP": str(MAILROOM_PHP)})
        self.assertEqual(rc, 0, f"stdout={out!r} stderr={err!r}")
        job_id = out.strip()
        m = smtp.wait_for_count(1)[0]
        self.assertIn("SMTPUTF8", m.mail_options)
        self.assertEqual(m.mail_from, f"noreply@{ZH_ACE}")
        self.assertEqual(m.rcpt_tos, [f"ming@{ZH_ACE}", f"josé@{DE_ACE}"])
        self.wait_state(r, job_id, "sent")


# --------------------------------------------------------------------------- same rules

# Addresses and their envelope forms, or None when refused: the cases of
# tests/unit/test_address.c that PHP must answer the same way.
CURATED = {
    f"ming@{ZH}": f"ming@{ZH_ACE}",
    f"info@{DE}": f"info@{DE_ACE}",
    "info@BÜCHER.DE": "info@xn--bcher-kva.DE",
    f"info@{DE_ACE}": f"info@{DE_ACE}",
    "info@XN--BCHER-KVA.de": f"info@{DE_ACE}",
    "a@u\u0308ber.de": "a@xn--ber-goa.de",
    "a@ｅｘａｍｐｌｅ.com": "a@example.com",
    "a@faß.de": "a@xn--fa-hia.de",
    "a@σς.gr": "a@xn--3xab.gr",
    "a@עברית.il": "a@xn--5dbqzzl.il",
    "a@пример.рф": "a@xn--e1afmkfd.xn--p1ai",
    "a@ab--cd.example": "a@ab--cd.example",
    "a@раураl.com": "a@xn--l-7sba6dbr.com",
    f"用户@{ZH}": f"用户@{ZH_ACE}",
    "pelé@example.com": "pelé@example.com",
    "josé.garcía@example.com": "josé.garcía@example.com",
    "u\u0308ser@example.com": "u\u0308ser@example.com",
    "a\u00a0z@example.com": "a\u00a0z@example.com",
    "a" * 58 + "@" + "例子." * 16 + "com": "a" * 58 + "@" + "xn--fsqu00a." * 16 + "com",
    "x@ü" + "a" * 55 + ".de": "x@xn--" + "a" * 55 + "-oxf.de",
    "a@aא.com": None,
    "a@\u2603.com": None,
    "a@xn--vnk.com": None,
    "a@xn--bcher-kvb.de": None,
    "a@xn--.de": None,
    "a@a\u200db.com": None,
    "a@ü-.de": None,
    "a@\u0308a.de": None,
    "a@ü_b.de": None,
    "a@\u2260.com": None,
    "a@=\u0338.com": None,
    "a@a\u3002b.com": None,
    "a@ü..de": None,
    "a\u0085z@example.com": None,
    "a\u009fz@example.com": None,
    "\"用户\"@example.com": None,
    "用户.@example.com": None,
    "用..户@example.com": None,
    "用" * 22 + "@example.com": None,
    "a" * 59 + "@" + "例子." * 16 + "com": None,
    "a@" + "例子." * 21 + "com": None,
    "x@ü" + "a" * 56 + ".de": None,
    "a@[127.0.0.1]": None,
    "a@localhost": None,
}


def generated_addresses() -> list:
    """A deterministic corpus of addresses for the C/PHP comparison."""
    rnd = random.Random(13)
    out = []
    # every BMP code point (surrogates aside) as a domain label of its own
    for cp in range(0x80, 0x10000):
        if not 0xD800 <= cp <= 0xDFFF:
            out.append(f"a@{chr(cp)}.com")
    # a sample of the other planes, and each after an 'a' (bidi, leading marks)
    for cp in range(0x10000, 0x110000, 97):
        out.append(f"a@{chr(cp)}.com")
    for cp in range(0x80, 0x30000, 7):
        if not 0xD800 <= cp <= 0xDFFF:
            out.append(f"a@a{chr(cp)}.com")
    # labels mixing scripts, digits, joiners, viramas, marks, CONTEXTO characters
    pool = (list("abz09-") + ["ü", "ß", "ς", "Σ", "İ", "ı"]
            + [chr(c) for c in range(0x5D0, 0x5D6)]
            + [chr(c) for c in (0x627, 0x628, 0x644, 0x661, 0x662, 0x6F1, 0x660, 0x6F0, 0x64B)]
            + ["\u200c", "\u200d", "\u094d", "\u0915", "\u00b7", "l", "\u0375", "\u03b1",
               "\u05f3", "\u30fb", "\u30a2", "\u4e00", "\u0301", "\u0338", "=", "\uff21",
               "\u2162", "\u3002", "\u0640", "\u1100", "\uac00", "\u0e31", "\u0f0b", "\u3007",
               "\u06fd", "\u20d0", "\u200b", "\u00ad", "\U00020000", "\U0001e030", "\U0001f600",
               "\u0669", "\u0966", "_", " ", "."])
    labels = ["".join(rnd.choice(pool) for _ in range(rnd.randint(1, 5))) for _ in range(6000)]
    out += [f"a@{lb}.example" for lb in labels]
    # A-labels: punycode of raw strings (mapped or not), upper-cased, mutated
    for lb in labels[:3000]:
        try:
            ace = "xn--" + lb.encode("punycode").decode("ascii")
        except UnicodeError:
            continue
        k = rnd.randrange(4, len(ace)) if len(ace) > 4 else 4
        out += [f"a@{ace}.com", f"a@{ace.upper()}.com",
                f"a@{ace[:k]}{rnd.choice('abcxyz019-')}{ace[k + 1:]}.com"]
    # local parts: atext, specials, UTF-8, C1, dots, around 64 octets
    lpool = list("aZ9.!#$%&'*+/=?^_`{|}~-") + list(" \"(),:;<>[\\]@") + [
        "é", "用", "ü", "\u0085", "\u009f", "\u00a0", "\u2028", "\U0001f600", "\u0301"]
    for _ in range(4000):
        local = "".join(rnd.choice(lpool) for _ in range(rnd.randint(1, 70)))
        out.append(f"{local}@example.com")
    # lengths around 254 (as given and as A-labels) and 63 per label
    for n in range(50, 70):
        out.append("a" * n + "@" + "例子." * 16 + "com")
        out.append("x@ü" + "a" * (n - 10) + ".de")
        out.append("x@" + "b" * n + ".de")
    for n in range(180, 260, 3):
        out.append("a@" + ".".join(["c" * 60] * (n // 61)) + "." + "d" * (n % 61 or 1))
    return [a for a in out if "\n" not in a and "\r" not in a]


class SameRulesTest(unittest.TestCase):

    def setUp(self):
        why = php_missing()
        if why:
            self.skipTest(why)
        d = tempfile.TemporaryDirectory(prefix="mailroom-intl-")
        self.addCleanup(d.cleanup)
        self.tmp = d.name

    def c_verdicts(self, mailboxes: list) -> list:
        """For each mailbox, None when the C validator accepts it as a `to`, else its
        reason: one `mailroom send --jsonl` run (every line validated before anything
        is sent; a last invalid line makes sure nothing is)."""
        path = os.path.join(self.tmp, "emails.jsonl")
        with open(path, "w", encoding="utf-8") as f:
            for mb in mailboxes:
                f.write(json.dumps({"to": [mb], "from": "noreply@example.com", "subject": "s",
                                    "text": "t"}, ensure_ascii=False) + "\n")
            f.write('{"to":["not an address"],"from":"noreply@example.com","subject":"s",'
                    '"text":"t"}\n')
        env = mailroom_env(redis_url=f"redis://127.0.0.1:{free_port()}/0", secret=SECRET)
        rc, out, err = run_cli("send", "--jsonl", path, env=env, timeout=120)
        self.assertEqual(rc, 65, f"stdout={out[-500:]!r} stderr={err[-2000:]!r}")
        why = {}
        for line in err.splitlines():
            m = re.match(r"mailroom: line (\d+): (.*)", line)
            if m:
                why[int(m.group(1))] = m.group(2)
        self.assertIn(len(mailboxes) + 1, why, "the last, invalid line was not reported")
        return [why.get(i + 1) for i in range(len(mailboxes))]

    def php(self, code: str, data) -> list:
        """Runs a PHP snippet with mailroom.php loaded, $in holding data (from JSON);
        it prints one JSON value, returned."""
        path = os.path.join(self.tmp, "in.json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump(data, f, ensure_ascii=False)
        snippet = ("require getenv('MAILROOM_PHP');\n"
                   "$in = json_decode(file_get_contents(getenv('INTL_IN')), true, 512, "
                   "JSON_THROW_ON_ERROR);\n" + code)
        env = {**os.environ, "MAILROOM_PHP": str(MAILROOM_PHP), "INTL_IN": path}
        rc, out, err = run([PHP, "-d", "memory_limit=1G", "-r", snippet], env=env, timeout=120)
        self.assertEqual(rc, 0, f"stdout={out[-500:]!r} stderr={err[-2000:]!r}")
        self.assertEqual(err, "", "PHP warnings")
        return json.loads(out)

    def php_verdicts(self, mailboxes: list) -> list:
        return self.php(r"""
$m = new Mailroom(new Redis(), 'default', 'default', str_repeat('k', 16));
$out = [];
foreach ($in as $mb) {
    try {
        $m->validate(['to' => [$mb], 'from' => 'noreply@example.com', 'subject' => 's',
                      'text' => 't']);
        $out[] = null;
    } catch (MailroomInvalidException $e) {
        $out[] = $e->getMessage();
    }
}
echo json_encode($out, JSON_UNESCAPED_UNICODE | JSON_INVALID_UTF8_SUBSTITUTE);
""", mailboxes)

    def assert_same_verdicts(self, mailboxes: list):
        c, p = self.c_verdicts(mailboxes), self.php_verdicts(mailboxes)
        self.assertEqual(len(c), len(p))
        differ = [(mb, cw, pw) for mb, cw, pw in zip(mailboxes, c, p)
                  if (cw is None) != (pw is None)]
        shown = "\n".join(f"  {mb!r}: C {cw or 'accepts'} / PHP {pw or 'accepts'}"
                          for mb, cw, pw in differ[:20])
        self.assertEqual(differ, [], f"{len(differ)} of {len(mailboxes)} differ:\n{shown}")
        return c

    def test_curated_addresses(self):
        """The unit tests' cases: same verdicts, and PHP's envelope forms are the
        expected ones (the C forms are checked in tests/unit/test_address.c)."""
        addrs = list(CURATED)
        verdicts = self.assert_same_verdicts(addrs + [f"Name <{a}>" for a in addrs])
        for a, why in zip(addrs, verdicts):
            self.assertEqual(why is None, CURATED[a] is not None, f"{a!r}: {why}")
        forms = self.php(r"""
$out = [];
foreach ($in as $a) {
    try { $out[] = Mailroom::envelopeAddress($a); }
    catch (MailroomInvalidException $e) { $out[] = null; }
}
echo json_encode($out, JSON_UNESCAPED_UNICODE);
""", addrs)
        self.assertEqual(dict(zip(addrs, forms)), CURATED)

    def test_generated_addresses(self):
        """Some 120 000 generated addresses: C and PHP accept and refuse the same."""
        addrs = generated_addresses()
        verdicts = self.assert_same_verdicts(addrs)
        accepted = sum(v is None for v in verdicts)
        # the corpus exercises both sides of the rules
        self.assertGreater(accepted, 10000)
        self.assertGreater(len(addrs) - accepted, 10000)

    def test_signing_vector_addresses(self):
        """Every address member of every signing vector validates in C (test_sig) and
        in PHP, the international vectors included."""
        doc = json.loads(VECTORS.read_text(encoding="utf-8"))
        emails = []
        for v in doc["vectors"]:
            j = v["job"]
            emails.append({k: j[k] for k in ("to", "cc", "bcc", "from", "from_name",
                                             "reply_to") if k in j and j[k] != []}
                          | {"subject": "s", "text": "t"})
        names = [v["name"] for v in doc["vectors"]]
        self.assertIn("idn_domains_sha1", names)
        self.assertIn("utf8_local_parts_sha256", names)
        out = self.php(r"""
$m = new Mailroom(new Redis(), 'default', 'default', str_repeat('k', 16));
$out = [];
foreach ($in as $email) {
    try { $m->validate($email); $out[] = null; }
    catch (MailroomInvalidException $e) { $out[] = $e->getMessage(); }
}
echo json_encode($out, JSON_UNESCAPED_UNICODE);
""", emails)
        self.assertEqual(dict(zip(names, out)), {n: None for n in names})


if __name__ == "__main__":
    unittest.main()
