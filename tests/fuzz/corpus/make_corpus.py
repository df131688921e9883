#!/usr/bin/env python3
"""Writes the seed corpora of the libFuzzer targets (tests/fuzz/corpus/fuzz_job/ and
tests/fuzz/corpus/fuzz_mime/) and their dictionaries. Deterministic: running it again
gives the same files. Python 3 stdlib only; signs with tests/tools/mailroom_sign.py.

    /usr/bin/python3 tests/fuzz/corpus/make_corpus.py      # rewrite both corpora

The fuzz targets hold two keys: kid "default" = "mailroom-example-secret" and kid
"k2" = "0123456789abcdef0123456789abcdef" (see fuzz_job.c). Every test vector's job is
signed with one of them (so seeds reach the accepted path of sig_verify_job), a few keep
their own kid (unknown kid), and hand-written malformed inputs cover the rejections.

fuzz_mime seeds that start with byte 0x00 or 0x01 are for its structure-aware mode (see
struct_mode() in fuzz_mime.c): 0x00/0x01, flags F1, counts F2, extra recipients F3, then
NUL-separated fields.
"""

import hashlib
import json
import os
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, os.pardir, os.pardir, os.pardir))
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(ROOT, "tests", "tools"))
import mailroom_sign as ms  # noqa: E402

KEY_DEFAULT = b"mailroom-example-secret"
KEY_K2 = b"0123456789abcdef0123456789abcdef"


def dumps(job, **kw):
    return json.dumps(job, ensure_ascii=False, separators=(",", ":"), **kw).encode("utf-8")


def signed(job, kid="default", alg=None):
    key = KEY_DEFAULT if kid == "default" else KEY_K2
    return ms.signed_job(job, key, kid=kid, alg=alg or job.get("alg", "hmac-sha1"))


def base_job(**extra):
    job = {"v": "1", "id": "01JDQ6Z3K8P4W7X2M5N9R0T1AB", "to": ["ming@example.com"],
           "from": "noreply@example.com", "subject": "Hi", "text": "Hello",
           "created_at": "2026-11-24T13:00:00Z", "kid": "default", "alg": "hmac-sha1"}
    job.update(extra)
    return job


def vector_jobs():
    with open(os.path.join(ROOT, "tests", "vectors", "signing.json"), encoding="utf-8") as f:
        vectors = json.load(f)["vectors"]
    out = []
    for i, v in enumerate(vectors):
        job = dict(v["job"])
        if v["key"] == KEY_DEFAULT.decode() and job["kid"] == "default":
            job["sig"] = v["sig"]          # the vector's own signature verifies
            out.append(("vec_" + v["name"], job))
        else:
            kid = "k2" if i % 2 else "default"
            out.append(("vec_" + v["name"] + "_" + kid, signed(job, kid=kid, alg=v["alg"])))
    return vectors, out


def valid_extras():
    """Signed, valid jobs that stress the MIME encoder."""
    zh = "请激活您的账户这是一封来自滴水网的邮件感谢您的注册"
    jobs = {
        "long_ascii_subject": base_job(subject=" ".join(["word%d" % i for i in range(220)])),
        "subject_unbreakable_900": base_job(subject="x" * 900),
        "subject_encoded_word_lookalike": base_job(subject="=?UTF-8?B?SGk=?= and =?x?="),
        "subject_2000_cjk": base_job(subject=(zh * 40)[:666]),
        "names_quoted_encoded": base_job(
            to=['"Doe, Jane" <jane@example.com>', "王小明 <ming@example.com>",
                '"a\\"b\\\\c" <q@example.org>', " Spaced  Name  <s@example.net>",
                "=?UTF-8?B?eA==?= <e@example.com>"],
            cc=["Émile Zola <emile@example.com>"], bcc=["audit@example.org"],
            reply_to='"Support, Team" <support@example.com>', from_name="滴水网 \"News\""),
        "hundred_recipients": base_job(
            to=["User Number %d <user%d@host%d.example.com>" % (i, i, i % 9) for i in range(60)],
            cc=["cc%d@example.org" % i for i in range(30)],
            bcc=["bcc%d@example.net" % i for i in range(10)]),
        "long_addresses": base_job(
            to=["%s@%s.%s.example.com" % ("l" * 64, "a" * 63, "b" * 63),
                "N" * 256 + " <" + "m" * 64 + "@" + "c" * 63 + ".example.com>"],
            **{"from": "f" * 64 + "@" + "d" * 63 + "." + "e" * 63 + ".example.com"},
            from_name="名" * 85),
        "headers_32": base_job(headers={("X-H%d" % i): ("v%d " % i) * (i * 10 % 200)
                                        for i in range(29)} | {
            "List-Unsubscribe": "<https://example.com/u/42>, <mailto:u@example.com>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            "List-Id": "Example 列表 <news.example.com>"}),
        "header_value_998": base_job(headers={"X-" + "L" * 74: "v" * 998,
                                              "X-Long-Words": ("abc " * 249)[:998],
                                              "X-Cjk": (zh * 30)[:332]}),
        "text_crlf_mix_qp": base_job(
            text="line1\r\nline2\nline3\rline4\n\r" + "x" * 200 + " \t\r\n=3D.\r\n.\n \n\t"
                 + "y" * 75 + "=" + "\r\n" + "trailing space "),
        "html_and_text_empty": base_job(text="", html=""),
        "html_cjk_base64": base_job(text=zh * 20 + "\n" + zh, html="<p>" + zh * 30 + "</p>\r\n"),
        "text_all_controls": base_job(text="".join(chr(c) for c in range(1, 128)) + "\u00ff\u07ff\uffff\U0010ffff"),
        "body_long_line_qp": base_job(text="a" * 5000 + "\n" + "é" * 3000,
                                      html="<b>" + "=" * 2000 + "</b>"),
        "id_escapes": base_job(id="a.b:c-d_e." + "9" * 100, send_at="2026-11-24T13:05:00.5+08:00",
                               expires_at="9999-12-31T23:59:59.999999999-23:59"),
        "year_1000": base_job(created_at="1000-01-01T00:00:00Z"),
        "year_9999_end": base_job(created_at="9999-12-31T23:59:59.999Z"),
        "sha256_k2": dict(base_job(alg="hmac-sha256"), kid="k2"),
        # '=' and '?' are atext: bare addresses that look like encoded words
        "address_looks_encoded": base_job(to=["=?UTF-8?B?x@example.com",
                                              "N <=?utf-8?q?a?=@example.com>"],
                                          **{"from": "=?x?=@example.com"}),
        # international addresses: IDN domains (A-labels in the headers), UTF-8 local
        # parts (raw in the headers), A-labels given, a 254-octet envelope
        "international_addresses": base_job(
            to=["王小明 <ming@例子.测试>", "用户@Bücher.de", "ops@XN--BCHER-KVA.de"],
            cc=["José <josé@пример.рф>"], bcc=["пользователь@example.com"],
            reply_to="Soporte <atención@ｅｘａｍｐｌｅ.com>",
            **{"from": "邮件@例子.测试"}, from_name="例子"),
        "idn_envelope_254": base_job(to=["a" * 58 + "@" + "例子." * 16 + "com",
                                         "用" * 21 + "@" + "ü" + "a" * 55 + ".de"]),
    }
    out = []
    for name, job in jobs.items():
        kid = job.get("kid", "default")
        js = signed(job, kid=kid, alg=job["alg"])
        ms.validate_job(js, require_sig=True)
        out.append((name, js))
    return out


def malformed(good):
    """(name, raw bytes) of inputs the consumer must reject."""
    g = dumps(good)
    bad = {
        "empty": b"",
        "truncated_half": g[:len(g) // 2],
        "truncated_last": g[:-1],
        "deep_array": b"[" * 200 + b"]" * 200,
        "deep_object": b'{"a":' * 100 + b"1" + b"}" * 100,
        "deep_in_job": g[:-1] + b',"to":[["x@example.com"]]}',
        "headers_nested": g[:-1] + b',"headers":{"X-A":{"b":"c"}}}',
        "not_object": b'["v","1"]',
        "null": b"null",
        "trailing_garbage": g + b"x",
        "two_objects": g + g,
        "trailing_nul": g + b"\0",
        "bom": b"\xef\xbb\xbf" + g,
        "comment": b"/*x*/" + g,
        "trailing_comma": g[:-1] + b",}",
        "single_quotes": g.replace(b'"', b"'"),
        "nan": g[:-1] + b',"x":NaN}',
        "pretty_printed": json.dumps(good, ensure_ascii=True, indent=2).encode(),
        "crlf_subject": dumps(signed(base_job(subject="Hi\r\nBcc: victim@example.com"))),
        "crlf_to": dumps(signed(base_job(to=["a@example.com\r\nRCPT TO:<x@example.com>"]))),
        "crlf_header": dumps(signed(base_job(headers={"X-A": "b\r\nBcc: v@example.com"}))),
        "space_header_name": dumps(signed(base_job(headers={"X-A Bcc": "v@example.com"}))),
        "unknown_name_escapes": g[:-1] + b',"a\\u00e9\\/b":"c"}',
        "crlf_id": dumps(signed(base_job(id="a\r\nb"))),
        "invalid_utf8_subject": g.replace(b'"Hi"', b'"H\xff\xfei"'),
        "overlong_utf8": g.replace(b'"Hi"', b'"\xc0\xaf\xe0\x80\xaf"'),
        "surrogate_utf8": g.replace(b'"Hi"', b'"\xed\xa0\x80"'),
        "above_10ffff": g.replace(b'"Hi"', b'"\xf4\x90\x80\x80"'),
        "lone_surrogate_escape": g.replace(b'"Hi"', b'"\\ud800"'),
        "nul_escape_text": g.replace(b'"Hello"', b'"Hel\\u0000lo"'),
        "nul_escape_key": g[:-1] + b',"x\\u0000":"y"}',
        "number_subject": g.replace(b'"Hi"', b"42"),
        "bool_to": g.replace(b'["ming@example.com"]', b"true"),
        "null_from": g.replace(b'"noreply@example.com"', b"null"),
        "object_in_to": g.replace(b'["ming@example.com"]', b'[{"a":"b"}]'),
        "string_to": g.replace(b'["ming@example.com"]', b'"ming@example.com"'),
        "headers_array": dumps(signed(base_job())).replace(b'"kid"', b'"headers":["X-A"],"kid"'),
        "unknown_member": dumps(signed(base_job(priority="high"))),
        "missing_text": dumps(signed({k: v for k, v in base_job().items() if k != "text"})),
        "missing_sig": dumps(base_job()),
        "duplicate_subject": g[:-1] + b',"subject":"Other"}',
        "id_braces": dumps(signed(base_job(id="{default}:x"))),
        "id_space": dumps(signed(base_job(id="a b"))),
        "id_129": dumps(signed(base_job(id="a" * 129))),
        "rcpt_101": dumps(signed(base_job(to=["u%d@example.com" % i for i in range(101)]))),
        "headers_33": dumps(signed(base_job(headers={"X-H%d" % i: "v" for i in range(33)}))),
        "header_mailroom": dumps(signed(base_job(headers={"X-Mailroom-Id": "x"}))),
        "header_bcc": dumps(signed(base_job(headers={"Bcc": "x@example.com"}))),
        "bad_date_feb30": dumps(signed(base_job(created_at="2026-02-30T00:00:00Z"))),
        "bad_date_space": dumps(signed(base_job(created_at="2026-11-24 13:00:00Z"))),
        "bad_date_frac10": dumps(signed(base_job(created_at="2026-11-24T13:00:00.0123456789Z"))),
        "bad_offset": dumps(signed(base_job(created_at="2026-11-24T13:00:00+24:00"))),
        "huge_subject": dumps(signed(base_job(subject="S" * 3000))),
        "sig_uppercase": g.replace(good["sig"].encode(), good["sig"].upper().encode()),
        "sig_truncated": g.replace(good["sig"].encode(), good["sig"][:39].encode()),
        "sig_sha256_len": g.replace(good["sig"].encode(), (good["sig"] * 2)[:64].encode()),
        "sig_forged": g.replace(good["sig"].encode(), hashlib.sha1(b"forged").hexdigest().encode()),
        "kid_unknown": dumps(ms.signed_job(base_job(), KEY_K2, kid="nope")),
        "alg_md5": dumps(signed(base_job())).replace(b'"hmac-sha1"', b'"hmac-md5"'),
        "altered_subject": g.replace(b'"Hi"', b'"Hj"'),
        "mailbox_quote_unbalanced": dumps(signed(base_job(to=['"a\\" <a@example.com>']))),
        "mailbox_domain_literal": dumps(signed(base_job(to=["a@[127.0.0.1]"]))),
        "mailbox_gt_only": dumps(signed(base_job(to=["a@example.com>"]))),
        "from_with_name": dumps(signed(base_job(**{"from": "A <a@example.com>"}))),
    }
    return bad


def struct_seed(mode, f1, f2, f3, fields):
    return bytes([mode, f1, f2, f3]) + b"\0".join(
        f if isinstance(f, bytes) else f.encode("utf-8") for f in fields)


def struct_seeds():
    zh = "请激活您的账户这是一封来自滴水网的邮件"
    return {
        # subject, text, to
        "struct_min": struct_seed(1, 0x00, 0x00, 0, ["Hi", "Hello", ""]),
        # from_name, subject, text, html, to x2, cc x1, reply_to; quoted names
        "struct_full": struct_seed(1, 0x0F, 0x05, 0,
                                   ["滴水网", zh, zh * 10 + "\r\n", "<p>" + zh + "</p>",
                                    "王小明", "Doe, Jane", "李雷", "客服"]),
        # id, created_at, from, from_name, subject, text, to x4, cc x3, bcc, 7 headers
        "struct_headers": struct_seed(1, 0x72, 0xFF, 0,
                                      ["order-42:x", "2026-11-24T21:00:00.123+08:00",
                                       "receipts@example.com", "Shop 商店", "Receipt " * 20,
                                       "Total: 42\n" * 50, "a", "b <x@example.com>", "", "d",
                                       "e", "f", "g", "h",
                                       "Campaign", "双十一 " * 30, "\x01", "<https://e.com/u>",
                                       "Zone", "eu-1", "\x03", "News <news.example.com>",
                                       "Long", "x" * 998, "Q", "=?UTF-8?Q?x?=", "Z", "",
                                       "X-Raw-Name", "raw\r\nvalue\x00"]),
        # raw mode with control characters and invalid UTF-8 (validation decides)
        "struct_raw_bad": struct_seed(0, 0x03, 0x01, 0,
                                      [b"\xff\xfe", b"Sub\r\nject", b"t\x01ext\xc0\xaf",
                                       b"<h>", b"name\x7f", b"n2"]),
        "struct_raw_ok": struct_seed(0, 0x0B, 0x01, 0,
                                     ["Émile", "Subject with spaces  and  =?", "body\n",
                                      "<i>x</i>", "A B", "C"]),
        # many generated recipients (F3), and one past the limit
        "struct_rcpt_99": struct_seed(1, 0x00, 0x00, 99, ["Hi", "Hello", "first"]),
        "struct_rcpt_100": struct_seed(1, 0x00, 0x00, 100, ["Hi", "Hello", "first"]),
        # long names that force folding and encoded words
        "struct_long_names": struct_seed(1, 0x0A, 0x0D, 0,
                                         ["N" * 250, "S" * 77 + " " + "T" * 900, "x",
                                          "a" * 254, "é" * 127, zh * 4, "b" * 60 + " " + "c" * 60,
                                          "d@" + "e" * 60 + ".example.com"]),
        "struct_year_edge": struct_seed(1, 0x20, 0x00, 0,
                                        ["1000-01-01T00:00:00.999999999-00:01", "Hi", "Hello", ""]),
        # from, subject, text, to x3 and cc x1 given as international addresses
        "struct_idn": struct_seed(1, 0x40, 0x06, 0,
                                  ["邮件@例子.测试", "Hi", "Hello", "ming@例子.测试",
                                   "用户@Bücher.de", "ops@xn--bcher-kva.de", "x@a\u3002b.com"]),
    }


def write_dir(path, items):
    if os.path.isdir(path):
        shutil.rmtree(path)
    os.makedirs(path)
    for name, data in items:
        with open(os.path.join(path, name), "wb") as f:
            f.write(data)


DICT_JOB = [
    '"\\"v\\""', '"\\"id\\""', '"\\"to\\""', '"\\"cc\\""', '"\\"bcc\\""', '"\\"reply_to\\""',
    '"\\"from\\""', '"\\"from_name\\""', '"\\"subject\\""', '"\\"text\\""', '"\\"html\\""',
    '"\\"headers\\""', '"\\"created_at\\""', '"\\"send_at\\""', '"\\"expires_at\\""',
    '"\\"kid\\""', '"\\"alg\\""', '"\\"sig\\""', '"\\"hmac-sha1\\""', '"\\"hmac-sha256\\""',
    '"\\"default\\""', '"\\"k2\\""', '"\\"1\\""', '"\\\\u0000"', '"\\\\ud800"', '"\\\\udc00"',
    '"\\\\\\""', '"\\\\\\\\"', '"\\\\r\\\\n"', '"\\\\t"', '"@example.com"', '"<a@b.cc>"',
    '"\\"List-Unsubscribe\\""', '"\\"List-Unsubscribe-Post\\""', '"\\"List-Id\\""',
    '"\\"X-"', '"X-Mailroom-"', '"2026-11-24T13:00:00Z"', '"+08:00"', '"-23:59"', '".123"',
    '"=?"', '"?="', '"=?UTF-8?B?"', '"\\xc3\\xa9"', '"\\xe6\\xbb\\xb4"', '"\\xf0\\x9f\\x98\\x80"',
    '"\\xc0\\xaf"', '"\\xed\\xa0\\x80"', '"[]"', '"{}"', '"null"', '"true"', '"0"',
    '"xn--"', '"XN--"', '"@xn--fsqu00a.xn--0zwm56d"', '"@\\xe4\\xbe\\x8b\\xe5\\xad\\x90.com"',
    '"b\\xc3\\xbccher"', '"\\xe3\\x80\\x82"', '"\\xc2\\x85"', '"\\xe2\\x80\\x8d"',
]


def main():
    vectors, vjobs = vector_jobs()
    extras = valid_extras()
    good = signed(base_job())
    bad = malformed(good)

    job_items = [(n, dumps(j)) for n, j in vjobs]
    job_items += [("keepkid_" + v["name"], dumps(ms.signed_job(v["job"], KEY_K2,
                                                               kid=v["job"]["kid"],
                                                               alg=v["alg"])))
                  for v in vectors if v["job"]["kid"] != "default"][:2]
    job_items += [(n, dumps(j)) for n, j in extras[:6]]
    job_items += [("bad_" + n, b) for n, b in bad.items()]

    mime_items = [(n, dumps(j)) for n, j in vjobs]
    mime_items += [(n, dumps(j)) for n, j in extras]
    mime_items += [("bad_" + n, bad[n]) for n in ("crlf_subject", "invalid_utf8_subject",
                                                  "huge_subject", "deep_array")]
    mime_items += list(struct_seeds().items())

    write_dir(os.path.join(HERE, "fuzz_job"), job_items)
    write_dir(os.path.join(HERE, "fuzz_mime"), mime_items)
    for t in ("fuzz_job", "fuzz_mime"):
        with open(os.path.join(HERE, t + ".dict"), "w") as f:
            f.write("# libFuzzer dictionary for %s (written by make_corpus.py)\n" % t)
            for i, tok in enumerate(DICT_JOB):
                f.write("kw%d=%s\n" % (i, tok))
    for t, items in (("fuzz_job", job_items), ("fuzz_mime", mime_items)):
        print("%s: %d files, %d bytes" % (t, len(items), sum(len(b) for _, b in items)))


if __name__ == "__main__":
    main()
