#!/usr/bin/python3
"""The dashboard, mailroom-web, in a real browser (headless Chromium driven by Selenium)
against a private redis-server, a real mailroom-consumer and an aiosmtpd receiver, all
on free 127.0.0.1 ports: the page loads without console errors and shows the counts
the test produced, follows live events within 2 s, its retry button returns a dead job
that then gets sent, its layout fits a phone's width; and, by plain HTTP requests, the
refusals: an action without the token, a cross-site one, a foreign Host.

Screenshots (desktop and phone) are saved in <build>/test-artifacts/ (tests/README.md).

Run: /usr/bin/python3 tests/integration/test_dashboard.py [-v] [TestClass.test_name]
The binaries come from $MAILROOM_BIN_DIR (default <repo>/build/bin).
"""

import json
import os
import subprocess
import sys
import time
import unittest

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # tests/

from support.browser import By, Browser, browser_missing  # noqa: E402
from support.case import ServerTestCase  # noqa: E402
from support.consumer import mailroom_env  # noqa: E402
from support.jobs import job_json, make_job, new_secret, push_jobs, sign_job  # noqa: E402
from support.procs import wait_for  # noqa: E402
from support.state import Keys  # noqa: E402
from support.web import WEB, Application, Program, Web  # noqa: E402

WEBHOOK = WEB.parent / "mailroom-webhook"
SECRET = new_secret()
Q = Keys("default")
BACKLOG = Keys("backlog")
REFUSAL = "554 5.7.1 refused by the test"


class DashboardCase(ServerTestCase):
    """A Redis, the binaries' environment, mailroom-web and a browser per test."""

    def setUp(self):
        super().setUp()
        self.rs = self.redis()
        self.r = self.rs.client()
        self.env = mailroom_env(self.rs, secret=SECRET)

    def web(self, *args, token=True) -> Web:
        """mailroom-web on both queues; it signs nothing, so it gets no signing key. At
        the end of the test it must stop on SIGTERM with status 0 (a sanitizer build
        that found a leak or an error exits otherwise) within 5 s."""
        web = self.stack.enter_context(Web(mailroom_env(self.rs), "--queue", "default,backlog",
                                           *args, token=token))
        self.addCleanup(self.assert_clean_stop, web)
        return web

    def assert_clean_stop(self, web):
        rc = web.stop(timeout=5)
        self.assertFalse(web.timed_out, "mailroom-web did not stop on SIGTERM")
        self.assertEqual(rc, 0, f"mailroom-web exited {rc}:\n{web.log()[-3000:]}")

    def browser(self, width=1280, height=900) -> Browser:
        why = browser_missing()
        if why:
            self.skipTest(why)
        return self.stack.enter_context(Browser(width, height))

    def consumer(self, rx):
        env = mailroom_env(self.rs, secret=SECRET, smtp=rx)
        return self.start_consumer(env, "--concurrency", "1")

    def dead_job(self, rx, **kw) -> str:
        """A job that ends in the dead list: rx must refuse its next message for good."""
        job_id = self.send(self.env, **kw)
        self.wait_state(self.r, job_id, ("failed", "rejected"))
        return job_id

    def backlog(self, n):
        """n jobs pending on the queue nobody consumes."""
        jobs = [make_job() for _ in range(n)]
        push_jobs(self.r, [(j["id"], job_json(sign_job(j, SECRET))) for j in jobs], "backlog")

    @staticmethod
    def js(b, script):
        return b.driver.execute_script(script)

    def text_of(self, b, selector):
        return self.js(b, f"const e = document.querySelector({json.dumps(selector)});"
                          "return e ? e.textContent : null;")

    def wait_text(self, b, selector, want, timeout=10.0):
        """Waits until the element's text is want; returns it."""
        return wait_for(lambda: self.text_of(b, selector) == want and want, timeout,
                        message=f"{selector} to read {want!r} (it reads "
                                f"{self.text_of(b, selector)!r})")

    def unlock(self, b, web):
        """Types the token into the page's token form, as an operator does."""
        b.driver.find_element(By.ID, "unlock").click()
        b.driver.find_element(By.ID, "token-input").send_keys(web.token)
        b.driver.find_element(By.CSS_SELECTOR, "#token-form button[type=submit]").click()

    def assert_no_console_errors(self, b):
        self.assertEqual(b.console_errors(), [], "the page logged errors")


# --------------------------------------------------------------------------- the page


class PageTest(DashboardCase):

    def produce(self):
        """2 dead letters, 3 sent jobs on default; 4 jobs pending on backlog."""
        rx = self.receiver(refuse_first=2, refuse_reply=REFUSAL)
        self.consumer(rx)
        self.dead_job(rx, subject="first refusal")
        self.dead_job(rx, subject="second refusal")
        for _ in range(3):
            self.wait_state(self.r, self.send(self.env), "sent")
        self.backlog(4)

    def test_page_shows_the_counts_without_console_errors(self):
        web = self.web()
        self.produce()
        b = self.browser()
        b.driver.get(web.url)
        card, backlog = '[data-q="default"] ', '[data-q="backlog"] '
        self.wait_text(b, card + '[data-k="dead"]', "2")
        self.wait_text(b, card + '[data-k="sent-total"]', "3")
        self.wait_text(b, card + '[data-k="pending"]', "0")
        self.wait_text(b, backlog + '[data-k="pending"]', "4")
        self.wait_text(b, '#charts [data-q="default"] [data-k="sent"]', "sent 3")
        self.wait_text(b, '#charts [data-q="default"] [data-k="failed"]', "failed 2")
        rows = wait_for(lambda: self.js(b, "return document.querySelectorAll("
                                           "'#dead tbody tr[data-id]').length") == 2, 10)
        self.assertTrue(rows)
        consumers = self.js(b, "return [...document.querySelectorAll('#consumers tbody tr')]"
                               ".map(r => r.children[2].textContent)")
        self.assertEqual(consumers, ["alive"])
        self.assertEqual(self.js(b, "return document.querySelectorAll('#charts svg polyline')"
                                    ".length"), 4, "a sent and a failed line per queue")
        # the feed opens with what happened since mailroom-web started: newest first
        states = wait_for(lambda: self.js(b, "return [...document.querySelectorAll('#feed li')]"
                                             ".map(e => e.dataset.state)"), 10)
        self.assertEqual(states[0], "sent")
        self.assertEqual(states.count("sent"), 3, states)
        self.assertEqual(states.count("failed"), 2, states)
        b.screenshot("dashboard-desktop")
        self.assert_no_console_errors(b)

    def test_phone_layout_has_no_horizontal_overflow(self):
        self.produce()
        web = self.web()
        b = self.browser(390, 844)
        b.driver.get(web.url)
        self.wait_text(b, '[data-q="default"] [data-k="dead"]', "2")
        wait_for(lambda: self.js(b, "return document.querySelectorAll('#dead tbody tr[data-id]')"
                                    ".length") == 2, 10)
        widths = self.js(b, "return [document.documentElement.scrollWidth, window.innerWidth,"
                            " document.body.scrollWidth]")
        self.assertEqual(widths[1], 390)
        self.assertLessEqual(widths[0], widths[1], f"the page scrolls sideways: {widths}")
        self.assertLessEqual(widths[2], widths[1], f"the body is wider than the screen: {widths}")
        wide = self.js(b, "return [...document.querySelectorAll('body *')].filter(e => "
                          "!e.closest('.scroll') && e.getBoundingClientRect().right > "
                          "window.innerWidth + 1).map(e => e.tagName + '.' + e.className)")
        self.assertEqual(wide, [], "elements outside the screen")
        b.screenshot("dashboard-phone")
        self.assert_no_console_errors(b)

    def test_live_events_reach_the_page_within_2s(self):
        rx = self.receiver()
        self.consumer(rx)
        web = self.web()
        listener = self.listener(self.rs)
        b = self.browser()
        b.driver.get(web.url)
        self.wait_text(b, '#live', "live")
        self.wait_text(b, '[data-q="default"] [data-k="sent-total"]', "0")
        job_id = self.send(self.env)
        ev = listener.wait_for_state(job_id, "sent", timeout=15)
        item = f'#feed li[data-id="{job_id}"][data-state="sent"]'
        wait_for(lambda: self.js(b, f"return !!document.querySelector({json.dumps(item)})"),
                 2.0, message="the sent event in the page's feed")
        self.wait_text(b, '[data-q="default"] [data-k="sent-total"]', "1", timeout=2.0)
        self.assertLessEqual(time.monotonic() - ev["_received"], 2.0)
        self.assert_no_console_errors(b)

    def test_retry_button_returns_a_dead_job_and_it_is_sent(self):
        rx = self.receiver(refuse_first=1, refuse_reply=REFUSAL)
        self.consumer(rx)
        job_id = self.dead_job(rx, subject="second chance")
        self.assertEqual(self.r.llen(Q.dead), 1)
        web = self.web()
        b = self.browser()
        b.driver.get(web.url)
        self.unlock(b, web)
        button = f'#dead tr[data-id="{job_id}"] button[data-act="retry"]'
        wait_for(lambda: self.js(b, f"const e = document.querySelector({json.dumps(button)});"
                                    "return e && !e.disabled"), 10, message="the retry button")
        self.js(b, f"document.querySelector({json.dumps(button)}).click()")
        msgs = rx.wait_for_count(1, timeout=15)
        self.assertEqual(msgs[0].message["Subject"], "second chance")
        self.wait_state(self.r, job_id, "sent")
        self.assertEqual(self.r.llen(Q.dead), 0)
        wait_for(lambda: self.js(b, "return document.querySelectorAll('#dead tbody tr[data-id]')"
                                    ".length === 0"), 10, message="the dead list emptied")
        self.assertIn("action /api/dead/retry from 127.0.0.1: 200", web.log())
        self.assertNotIn(web.token, web.log())
        self.assert_no_console_errors(b)

    def test_job_page_and_search_show_a_jobs_life(self):
        rx = self.receiver()
        self.consumer(rx)
        job_id = self.send(self.env, to="Ming@Example.com")
        self.wait_state(self.r, job_id, "sent")
        web = self.web()
        b = self.browser()
        b.driver.get(web.url + f"#/job/default/{job_id}")
        self.wait_text(b, '#job-record [data-k="state"]', "sent")
        self.wait_text(b, '#job-recipients tbody td', "Ming@Example.com")
        states = wait_for(lambda: self.js(b, "return [...document.querySelectorAll("
                                             "'#job-events li')].map(e => e.dataset.state)"), 10)
        self.assertEqual(states, ["sending", "sent"])
        b.driver.get(web.url + "#/search/%40example.com")
        found = wait_for(lambda: self.js(b, "return [...document.querySelectorAll("
                                            "'#search-outcomes li')].map(e => e.dataset.id)"), 10)
        self.assertEqual(found, [job_id])
        b.driver.get(web.url + f"#/search/{job_id}")
        wait_for(lambda: self.js(b, "return document.querySelector('#search-jobs a')?.textContent")
                 == job_id, 10, message="the job found by its id")
        self.assert_no_console_errors(b)

    def test_webhook_delivery_state_is_shown(self):
        app = self.stack.enter_context(Application(fail_first=1))
        rx = self.receiver()
        self.consumer(rx)
        hook_env = mailroom_env(self.rs, MAILROOM_WEBHOOK_SECRET=new_secret())
        hook = self.stack.enter_context(Program(hook_env, WEBHOOK, "--url", app.url,
                                                "--backoff-base", "100ms", kind="webhook"))
        wait_for(lambda: self.r.exists(f"{Q.prefix}:webhook"), 10, message="the webhook's hash")
        job_id = self.send(self.env)
        self.wait_state(self.r, job_id, "sent")
        wait_for(lambda: app.statuses == [500, 200], 15, message="a failed, then a good delivery")
        web = self.web()
        b = self.browser()
        b.driver.get(web.url)
        row = '#webhook tr[data-q="default"] '
        self.wait_text(b, row + '[data-k="delivered"]', "1")
        self.assertEqual(self.text_of(b, row + '[data-k="lag"]'), "0")
        self.assertIn(app.url, self.text_of(b, row))
        self.assertIsNone(self.text_of(b, '#webhook tr[data-q="backlog"]'),
                          "no webhook reported for backlog")
        self.assertTrue(hook.alive())
        self.assert_no_console_errors(b)

    def test_strings_from_redis_are_shown_as_text(self):
        web = self.web(token=False)
        b = self.browser()
        b.driver.get(web.url)
        self.wait_text(b, '#live', "live")
        markup = '<img src=x id=pwned onerror="document.title=1">'
        event = {"id": "x1", "queue": "default", "state": "failed", "attempts": 1,
                 "smtp_code": None, "smtp_reply": "", "error": markup, "consumer": "c1",
                 "at": "2026-01-01T00:00:00.000Z"}
        wait_for(lambda: self.r.publish(Q.status, json.dumps(event)) and self.js(
            b, "return !!document.querySelector('#feed li[data-id=\"x1\"]')"), 10, interval=0.2)
        self.assertEqual(self.text_of(b, '#feed li[data-id="x1"] .detail'), markup)
        self.assertFalse(self.js(b, "return !!document.getElementById('pwned')"))
        self.assertEqual(self.text_of(b, '#unlock'), "Unlock actions")
        self.assertTrue(self.js(b, "return document.getElementById('unlock').hidden"),
                        "no token: the page offers no actions")
        self.assert_no_console_errors(b)


# --------------------------------------------------------------------------- job control


def iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


class JobControlTest(DashboardCase):
    """The buttons of job control, each checked in Redis and in the page."""

    def open_unlocked(self, web, fragment=""):
        b = self.browser()
        b.driver.get(web.url + fragment)
        self.unlock(b, web)
        self.js(b, "window.confirm = () => true")  # the operator answers yes
        return b

    def click(self, b, selector):
        wait_for(lambda: self.js(b, f"const e = document.querySelector({json.dumps(selector)});"
                                    "return e && !e.disabled"), 10, message=selector)
        self.js(b, f"document.querySelector({json.dumps(selector)}).click()")

    def test_pause_and_resume_buttons(self):
        web = self.web()
        b = self.open_unlocked(web)
        paused = f"{Q.prefix}:paused"
        self.click(b, '[data-q="default"] button[data-act="pause"]')
        wait_for(lambda: self.r.exists(paused), 10, message="the queue paused in Redis")
        self.wait_text(b, '[data-q="default"] [data-k="paused"]', "paused")
        self.assertFalse(self.r.exists(f"{BACKLOG.prefix}:paused"), "only that queue")
        self.click(b, '[data-q="default"] button[data-act="resume"]')
        wait_for(lambda: not self.r.exists(paused), 10, message="the queue resumed in Redis")
        wait_for(lambda: self.text_of(b, '[data-q="default"] [data-k="paused"]') is None, 10)
        self.assert_no_console_errors(b)

    def test_cancel_from_the_job_page(self):
        job = make_job(to=("zed@example.org",))
        push_jobs(self.r, [(job["id"], job_json(sign_job(job, SECRET)))], "backlog")
        web = self.web()
        b = self.open_unlocked(web, f"#/job/backlog/{job['id']}")
        self.wait_text(b, '#job-record [data-k="state"]', "queued")
        self.click(b, "#job-cancel")
        self.wait_state(self.r, job["id"], "cancelled", queue="backlog")
        self.assertEqual(self.r.llen(BACKLOG.pending), 0, "the cancelled copy left pending")
        self.wait_text(b, '#job-record [data-k="state"]', "cancelled")
        self.assertTrue(self.js(b, "return document.getElementById('job-cancel').disabled"))
        self.assertIn("action /api/cancel from 127.0.0.1: 200", web.log())
        self.assert_no_console_errors(b)

    def test_retry_now_sends_a_retrying_job_at_once(self):
        rx = self.receiver(refuse_first=1, refuse_reply="451 4.3.0 try again later")
        env = mailroom_env(self.rs, secret=SECRET, smtp=rx)
        self.start_consumer(env, "--concurrency", "1", "--backoff-base", "1h",
                            "--backoff-max", "2h")
        job_id = self.send(self.env, subject="not in an hour")
        self.wait_state(self.r, job_id, "retrying")
        web = self.web()
        b = self.open_unlocked(web)
        self.js(b, "const k = document.getElementById('jobs-kind'); k.value = 'retrying';"
                   "k.dispatchEvent(new Event('change'))")
        self.click(b, f'#jobs tr[data-id="{job_id}"] button[data-act="retry-now"]')
        msgs = rx.wait_for_count(1, timeout=15)
        self.assertEqual(msgs[0].message["Subject"], "not in an hour")
        self.wait_state(self.r, job_id, "sent")
        self.assert_no_console_errors(b)

    def test_a_refused_action_says_why(self):
        rx = self.receiver()
        self.consumer(rx)
        job_id = self.send(self.env)
        self.wait_state(self.r, job_id, "sent")
        web = self.web()
        status, _, body = web.http("/api/cancel", method="POST",
                                   body=json.dumps({"queue": "default", "id": job_id}).encode(),
                                   headers={"Authorization": f"Bearer {web.token}",
                                            "X-Mailroom-Action": "1",
                                            "Content-Type": "application/json"})
        self.assertEqual(status, 409, body)
        self.assertIn("sent", json.loads(body)["error"])
        self.assertEqual(self.r.hget(Q.job(job_id), "state"), "sent")

    def test_waiting_jobs_latency_and_search(self):
        old = make_job(to=("zed@example.org",), created_at=iso(time.time() - 180))
        new = make_job(to=("amy@example.net",))
        push_jobs(self.r, [(j["id"], job_json(sign_job(j, SECRET))) for j in (old, new)],
                  "backlog")
        web = self.web()
        b = self.browser()
        b.driver.get(web.url)
        self.wait_text(b, '[data-q="backlog"] [data-k="latency"]', "3 min")
        self.assertEqual(self.text_of(b, '[data-q="default"] [data-k="latency"]'), "—")
        self.js(b, "const q = document.getElementById('jobs-queue'); q.value = 'backlog';"
                   "q.dispatchEvent(new Event('change'))")
        ids = wait_for(lambda: self.js(b, "return [...document.querySelectorAll('#jobs tbody "
                                          "tr[data-id]')].map(r => r.dataset.id)"), 10)
        self.assertEqual(ids, [old["id"], new["id"]], "the job taken next first")
        for text, want in (("zed%40example.org", [old["id"]]), ("%40example.net", [new["id"]]),
                           ("example.org", [old["id"]])):
            b.driver.get(web.url + "#/search/" + text)
            wait_for(lambda: self.js(b, "return [...document.querySelectorAll("
                                        "'#search-waiting li')].map(e => e.dataset.id)") == want,
                     10, message=f"the search for {text} to find {want}")
        self.assert_no_console_errors(b)

    def test_suppression_list_add_and_remove(self):
        web = self.web()
        b = self.open_unlocked(web)
        b.driver.find_element(By.ID, "suppress-address").send_keys("Bounce@Example.COM")
        b.driver.find_element(By.ID, "suppress-reason").send_keys("550 5.1.1 no such user")
        b.driver.find_element(By.CSS_SELECTOR, "#suppress-form button[type=submit]").click()
        key = "mailroom:{suppress}:addr:bounce@example.com"
        wait_for(lambda: self.r.exists(key), 10, message="the address suppressed in Redis")
        entry = json.loads(self.r.get(key))
        self.assertEqual((entry["source"], entry["reason"]), ("web", "550 5.1.1 no such user"))
        row = '#suppressed tr[data-address="bounce@example.com"]'
        wait_for(lambda: self.text_of(b, row), 10, message="the entry listed")
        b.driver.get(web.url + "#/search/bounce%40example.com")
        wait_for(lambda: "is suppressed" in (self.text_of(b, "#search-suppressed") or ""), 10)
        b.driver.get(web.url + "#/")
        self.click(b, row + ' button[data-act="unsuppress"]')
        wait_for(lambda: not self.r.exists(key), 10, message="the address removed in Redis")
        self.assertEqual(self.r.zscore("mailroom:{suppress}:index", "bounce@example.com"), None)
        wait_for(lambda: self.text_of(b, row) is None, 10, message="the entry gone from the page")
        self.assert_no_console_errors(b)

    def test_relays_and_consumers_say_what_they_are(self):
        now_ms = int(time.time() * 1000)
        # the keys the consumers write (docs/redis.md), as they write them
        self.r.zadd("mailroom:relays", {"smtp.example.com:587": now_ms - 2000})
        self.r.hset("mailroom:relay:{smtp.example.com:587}", mapping={
            "circuit": "open", "failures": "5", "opened_at": str(now_ms - 60000),
            "probe_at": str(now_ms + 30000), "last_error": "connect: Connection refused",
            "rate_max": "10", "rate": "2.5", "throttles": "3",
            "throttled_at": str(now_ms - 5000)})
        self.r.zadd("mailroom:relay:{smtp.example.com:587}:sessions",
                    {"c9:1": now_ms + 60000, "c9:2": now_ms + 60000, "gone:1": now_ms - 1000})
        self.r.zadd(Q.consumers, {"c9": now_ms})
        self.r.hset(f"{Q.prefix}:info:c9", mapping={
            "host": "mail-7", "pid": "4242", "version": "9.9.9",
            "started_at": "2026-01-01T00:00:00Z", "queues": "default,backlog:1",
            "relays": "smtp.example.com:587", "concurrency": "8", "sessions": "2"})
        web = self.web()
        b = self.browser()
        b.driver.get(web.url)
        relay = '#relays tr[data-relay="smtp.example.com:587"] '
        self.wait_text(b, relay + '[data-k="circuit"]', "open")
        self.assertEqual(self.text_of(b, relay + '[data-k="rate"]'), "2.5/s / 10/s")
        self.assertEqual(self.text_of(b, relay + '[data-k="sessions"]'), "2")
        self.assertIn("Connection refused", self.text_of(b, relay))
        consumer = '#consumers tr[data-consumer="c9"] '
        self.wait_text(b, consumer + '[data-k="sessions"]', "2")
        self.assertIn("mail-7 (pid 4242)", self.text_of(b, consumer))
        self.assertIn("default,backlog:1", self.text_of(b, consumer))
        self.assert_no_console_errors(b)


# --------------------------------------------------------------------------- refusals


class RefusalTest(DashboardCase):

    def setUp(self):
        super().setUp()
        rx = self.receiver(refuse_first=1, refuse_reply=REFUSAL)
        self.consumer(rx)
        self.job_id = self.dead_job(rx)
        self.before = (self.r.lrange(Q.dead, 0, -1), self.r.hgetall(Q.job(self.job_id)))

    def post(self, web, path="/api/dead/retry", body=None, **headers):
        body = json.dumps(body or {"queue": "default", "id": self.job_id}).encode()
        return web.http(path, method="POST", body=body, headers=headers)

    def good_headers(self, web):
        return {"Authorization": f"Bearer {web.token}", "X-Mailroom-Action": "1",
                "Content-Type": "application/json"}

    def assert_unchanged(self):
        self.assertEqual((self.r.lrange(Q.dead, 0, -1), self.r.hgetall(Q.job(self.job_id))),
                         self.before, "a refused action changed Redis")
        self.assertEqual(self.r.llen(Q.pending), 0)

    def test_an_action_without_the_token_is_refused(self):
        web = self.web()
        good = self.good_headers(web)
        for name, headers in (
                ("no token", {k: v for k, v in good.items() if k != "Authorization"}),
                ("wrong token", dict(good, Authorization="Bearer " + "x" * len(web.token))),
                ("token one byte short", dict(good, Authorization="Bearer " + web.token[:-1])),
                ("not a bearer token", dict(good, Authorization=web.token))):
            with self.subTest(name):
                status, hdrs, body = self.post(web, **headers)
                self.assertEqual(status, 401, body)
                self.assertEqual(hdrs["WWW-Authenticate"], 'Bearer realm="mailroom-web"')
                self.assertIn("token", json.loads(body)["error"])
        self.assert_unchanged()
        status, _, body = self.post(web, **good)  # the same request with the token passes
        self.assertEqual((status, json.loads(body)), (200, {"queue": "default", "count": 1}))
        self.assertEqual(self.r.llen(Q.dead), 0)
        self.assertIn("refused action /api/dead/retry from 127.0.0.1: 401", web.log())
        self.assertNotIn(web.token, web.log())

    def test_cross_site_requests_are_refused(self):
        web = self.web()
        good = self.good_headers(web)
        for name, headers, status in (
                ("foreign Origin", dict(good, Origin="http://evil.example"), 403),
                ("cross-site fetch", dict(good, **{"Sec-Fetch-Site": "cross-site"}), 403),
                ("same-site fetch", dict(good, **{"Sec-Fetch-Site": "same-site"}), 403),
                ("no X-Mailroom-Action (a form)",
                 {k: v for k, v in good.items() if k != "X-Mailroom-Action"}, 403),
                ("form content type", dict(good, **{"Content-Type": "text/plain"}), 415),
                ("foreign Host (DNS rebinding)", dict(good, Host=f"evil.example:{web.port}"),
                 403)):
            with self.subTest(name):
                got, _, body = self.post(web, **headers)
                self.assertEqual(got, status, body)
        self.assert_unchanged()
        status, _, _ = web.http("/api/dead/retry", headers=good)
        self.assertEqual(status, 405, "an action is never a GET")
        status, _, _ = web.http("/api/overview", headers={"Host": "evil.example"})
        self.assertEqual(status, 403, "a read through a foreign name")
        status, _, _ = self.post(web, **dict(good, Origin=web.url.rstrip("/"),
                                             **{"Sec-Fetch-Site": "same-origin"}))
        self.assertEqual(status, 200, "the page's own request passes")

    def test_without_a_token_file_every_action_is_refused(self):
        web = self.web(token=False)
        status, _, body = self.post(web, **{"Authorization": "Bearer " + "y" * 32,
                                            "X-Mailroom-Action": "1",
                                            "Content-Type": "application/json"})
        self.assertEqual(status, 403, body)
        self.assertIn("disabled", json.loads(body)["error"])
        self.assert_unchanged()
        status, hdrs, page = web.http("/")
        self.assertEqual(status, 200)
        self.assertIn("script-src 'self'", hdrs["Content-Security-Policy"])
        self.assertIn("frame-ancestors 'none'", hdrs["Content-Security-Policy"])
        self.assertNotIn(b"<script>", page, "no inline script")


# --------------------------------------------------------------------------- bad input, Redis away


class RobustnessTest(DashboardCase):

    def test_bad_requests_get_clear_errors(self):
        web = self.web()
        act = {"Authorization": f"Bearer {web.token}", "X-Mailroom-Action": "1",
               "Content-Type": "application/json"}
        for name, method, path, body, status in (
                ("not JSON", "POST", "/api/dead/retry", b"{not json", 400),
                ("not an object", "POST", "/api/dead/retry", b"[1,2]", 400),
                ("no body", "POST", "/api/dead/retry", None, 400),
                ("body over 16 KiB", "POST", "/api/dead/retry",
                 json.dumps({"queue": "default", "x": "y" * 20000}).encode(), 413),
                ("no id, no all", "POST", "/api/dead/retry", b'{"queue":"default"}', 400),
                ("bad id", "POST", "/api/dead/retry", b'{"queue":"default","id":"a b"}', 400),
                ("unknown id", "POST", "/api/dead/retry", b'{"queue":"default","id":"nope"}', 404),
                ("unknown queue", "POST", "/api/dead/retry", b'{"queue":"other","all":true}', 404),
                ("which queue", "POST", "/api/dead/retry", b'{"all":true}', 400),
                ("bad duration", "POST", "/api/dead/purge",
                 b'{"queue":"default","older_than":"soon"}', 400),
                ("unknown endpoint", "GET", "/api/nothing", None, 404),
                ("unknown file", "GET", "/secret.txt", None, 404),
                ("path outside", "GET", "/../../etc/passwd", None, 404),
                ("a page POSTed", "POST", "/index.html", b"{}", 405),
                ("minutes out of range", "GET", "/api/history?queue=default&minutes=0", None, 400),
                ("minutes not a number", "GET", "/api/history?queue=default&minutes=9x", None,
                 400),
                ("limit too large", "GET", "/api/dead?queue=default&limit=5000", None, 400),
                ("bad job id", "GET", "/api/job?queue=default&id=%3Cb%3E", None, 400),
                ("no such job", "GET", "/api/job?queue=default&id=nope", None, 404),
                ("search too short", "GET", "/api/search?q=ab", None, 400)):
            with self.subTest(name):
                got, hdrs, reply = web.http(path, method=method, body=body,
                                            headers=act if method == "POST" else {})
                self.assertEqual(got, status, reply)
                self.assertTrue(json.loads(reply)["error"], reply)
                self.assertTrue(hdrs["Content-Security-Policy"])
        self.assertTrue(web.alive())

    def test_redis_away_is_shown_and_survived(self):
        web = self.web()
        status, _, body = web.http("/api/overview")
        self.assertEqual((status, [q["ok"] for q in json.loads(body)["queues"]]), (200, [True, True]))
        self.rs.stop()
        status, _, body = web.http("/api/overview")
        queues = json.loads(body)["queues"]
        self.assertEqual((status, [q["ok"] for q in queues]), (200, [False, False]))
        self.assertIn(f"127.0.0.1:{self.rs.port}", queues[0]["error"])
        status, _, body = web.http("/api/dead?queue=default")
        self.assertEqual(status, 503, body)
        self.rs.start()
        self.backlog(2)
        def recovered():
            q = json.loads(web.http("/api/overview")[2])["queues"]
            return q[1]["ok"] and q[1]["stats"]["pending"] == 2
        wait_for(recovered, 10, message="the dashboard to read Redis again")
        self.assertTrue(web.alive())


    def test_every_endpoint_runs_as_the_documented_operator_role(self):
        from integration.test_job_control import operator_acl  # the rules of docs/security.md
        password = new_secret()
        for args in operator_acl(password):
            self.r.execute_command(*args)
        rx = self.receiver(refuse_first=1, refuse_reply=REFUSAL)
        self.consumer(rx)
        dead = self.dead_job(rx)
        sent = self.send(self.env, to="ming@example.com")
        self.wait_state(self.r, sent, "sent")
        self.backlog(2)
        url = f"redis://mailroom-operator:{password}@{self.rs.host}:{self.rs.port}/0"
        web = self.stack.enter_context(Web(mailroom_env(redis_url=url), "--queue",
                                           "default,backlog"))
        self.addCleanup(self.assert_clean_stop, web)
        waiting = json.loads(web.http("/api/jobs?queue=backlog")[2])["items"][0]["id"]
        act = {"Authorization": f"Bearer {web.token}", "X-Mailroom-Action": "1",
               "Content-Type": "application/json"}
        for method, path, body in (
                ("GET", "/api/overview", None), ("GET", "/api/history?queue=default", None),
                ("GET", "/api/dead?queue=default", None), ("GET", f"/api/job?id={sent}", None),
                ("GET", "/api/search?q=%40example.com", None), ("GET", f"/api/search?q={sent}", None),
                ("GET", "/api/jobs?queue=backlog&kind=scheduled", None),
                ("GET", "/api/suppressed", None),
                ("POST", "/api/pause", {"queue": "backlog"}),
                ("POST", "/api/resume", {"queue": "backlog"}),
                ("POST", "/api/cancel", {"queue": "backlog", "id": waiting}),
                ("POST", "/api/suppress/add", {"address": "x@example.com"}),
                ("POST", "/api/suppress/remove", {"address": "x@example.com"}),
                ("POST", "/api/dead/retry", {"queue": "default", "id": dead}),
                ("POST", "/api/dead/purge", {"queue": "default", "all": True})):
            with self.subTest(path):
                status, _, reply = web.http(path, method=method,
                                            body=json.dumps(body).encode() if body else None,
                                            headers=act if body else {})
                self.assertEqual(status, 200, reply)
                overview = json.loads(reply) if path == "/api/overview" else None
                if overview:
                    self.assertTrue(all(q["ok"] for q in overview["queues"]), overview)
                    self.assertIsInstance(overview["relays"], list, overview)
        self.wait_state(self.r, dead, "sent")


# --------------------------------------------------------------------------- start-up


class StartupTest(DashboardCase):

    def run_web(self, *args, token_mode=None):
        argv = [WEB, *args]
        if token_mode is not None:
            path = os.path.join(self.tmpdir(), "token")
            with open(path, "w") as f:
                f.write("t" * 32 + "\n")
            os.chmod(path, token_mode)
            argv += ["--token-file", path]
        p = subprocess.run([str(a) for a in argv], env=self.env, capture_output=True,
                           text=True, timeout=10)
        return p.returncode, p.stderr

    def test_unsafe_configurations_are_refused(self):
        for name, args, mode, rc, text in (
                ("network address", ["--listen", "0.0.0.0:0"], 0o600, 78, "--allow-remote"),
                ("network without origin", ["--listen", "0.0.0.0:0", "--allow-remote"], 0o600,
                 78, "--public-origin"),
                ("readable token file", [], 0o644, 78, "chmod 600"),
                ("password in argv", ["--redis", "redis://:hunter2@127.0.0.1:1/0"], None, 64,
                 "password"),
                ("a name to resolve", ["--listen", "example.com:8025"], None, 64, "IPv4"),
                ("private without token", ["--private"], None, 78, "--token-file")):
            with self.subTest(name):
                got, err = self.run_web(*args, token_mode=mode)
                self.assertEqual(got, rc, err)
                self.assertIn(text, err)
                self.assertNotIn("hunter2", err)

    def test_private_reads_need_the_token(self):
        web = self.web("--private")
        for path in ("/api/overview", "/events", "/api/dead?queue=default"):
            with self.subTest(path):
                status, _, _ = web.http(path)
                self.assertEqual(status, 401)
        status, _, body = web.http("/api/overview",
                                   headers={"Authorization": f"Bearer {web.token}"})
        self.assertEqual(status, 200, body)
        self.assertEqual([q["name"] for q in json.loads(body)["queues"]], ["default", "backlog"])
        status, _, _ = web.http("/")
        self.assertEqual(status, 200, "the page itself asks for the token")


if __name__ == "__main__":
    unittest.main()
