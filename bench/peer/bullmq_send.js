// bullmq_send.js: the peer mailroom is compared with in the far-relay benchmark
// (bench/py/far_relay.py, docs/performance.md, section 7): BullMQ + nodemailer, the
// usual Node.js way to send queued mail. It fills a BullMQ queue with N copies of the
// benchmark email (the fields of a mailroom bench job, read from --email), then drains
// it with one Worker of concurrency C whose jobs send through one nodemailer pooled
// transport of C connections (maxConnections C, maxMessages 100 like mailroom's
// --max-per-connection; nodemailer pipelines MAIL, RCPT and DATA when the server offers
// PIPELINING), and exits when all N are done.
//
//   node bullmq_send.js --redis redis://127.0.0.1:6379/0 --smtp 127.0.0.1:2626 \
//        --concurrency 64 --jobs 4000 --email email.json
//
// stdout: {"event":"filled",...} once the queue holds N jobs, {"event":"started",...}
// when the worker runs, {"event":"done",...} at the end (sent, failed, seconds); the
// last two carry its own CPU so far and peak RSS (the difference is the draining's). scripts/bench installs the pinned packages of package.json into
// build-bench/peer with npm and runs this file from there; it is never run from the
// source tree.
'use strict';

const fs = require('fs');
const { Queue, Worker } = require('bullmq');
const IORedis = require('ioredis');
const nodemailer = require('nodemailer');

function parseArgs(argv) {
    const out = { queue: 'mailroom-bench-peer', maxMessages: 100 };
    for (let i = 2; i < argv.length; i += 2) {
        const [k, v] = [argv[i], argv[i + 1]];
        if (v === undefined) throw new Error(`${k}: missing value`);
        if (k === '--redis') out.redis = v;
        else if (k === '--smtp') out.smtp = v;
        else if (k === '--concurrency') out.concurrency = Number(v);
        else if (k === '--jobs') out.jobs = Number(v);
        else if (k === '--email') out.email = v;
        else if (k === '--queue') out.queue = v;
        else if (k === '--max-messages') out.maxMessages = Number(v);
        else throw new Error(`unknown option ${k}`);
    }
    for (const k of ['redis', 'smtp', 'concurrency', 'jobs', 'email'])
        if (!out[k]) throw new Error(`--${k} is required`);
    const m = /^(127\.\d+\.\d+\.\d+):(\d+)$/.exec(out.smtp);
    if (!m) throw new Error('--smtp: 127.x.y.z:port only (the benchmark stays on loopback)');
    out.smtpHost = m[1];
    out.smtpPort = Number(m[2]);
    return out;
}

function emit(event, fields) {
    process.stdout.write(JSON.stringify({ event, ...fields }) + '\n');
}

function cpuAndMemory() {
    const u = process.resourceUsage();
    return { cpu_user_s: u.userCPUTime / 1e6, cpu_sys_s: u.systemCPUTime / 1e6,
             rss_max_kb: u.maxRSS };
}

async function fill(opts, connection, mail) {
    const queue = new Queue(opts.queue, { connection });
    const t0 = process.hrtime.bigint();
    for (let done = 0; done < opts.jobs; done += 1000) {
        const n = Math.min(1000, opts.jobs - done);
        await queue.addBulk(Array.from({ length: n }, () => ({ name: 'email', data: mail })));
    }
    const secs = Number(process.hrtime.bigint() - t0) / 1e9;
    await queue.close();
    emit('filled', { n: opts.jobs, seconds: secs });
}

function drain(opts, connection) {
    const transport = nodemailer.createTransport({
        pool: true, host: opts.smtpHost, port: opts.smtpPort, secure: false, ignoreTLS: true,
        maxConnections: opts.concurrency, maxMessages: opts.maxMessages,
    });
    let sent = 0, failed = 0, firstError = null;
    const t0 = process.hrtime.bigint();
    return new Promise((resolve) => {
        const worker = new Worker(opts.queue, async (job) => {
            const m = job.data;
            await transport.sendMail({ from: { name: m.from_name, address: m.from }, to: m.to,
                                       subject: m.subject, text: m.text, html: m.html });
        }, { connection, concurrency: opts.concurrency });
        const finish = async () => {
            const secs = Number(process.hrtime.bigint() - t0) / 1e9;
            await worker.close();
            transport.close();
            emit('done', { sent, failed, first_error: firstError, seconds: secs,
                           rate: sent / secs, concurrency: opts.concurrency, ...cpuAndMemory() });
            resolve();
        };
        worker.on('completed', () => {
            sent++;
            if (sent + failed === opts.jobs) finish();
        });
        worker.on('failed', (job, err) => {
            failed++;
            firstError = firstError || String(err && err.message);
            if (sent + failed === opts.jobs) finish();
        });
        worker.on('error', (err) => { firstError = firstError || String(err && err.message); });
        emit('started', { concurrency: opts.concurrency, jobs: opts.jobs, ...cpuAndMemory() });
    });
}

async function main() {
    const opts = parseArgs(process.argv);
    const mail = JSON.parse(fs.readFileSync(opts.email, 'utf8'));
    const connection = new IORedis(opts.redis, { maxRetriesPerRequest: null });
    await fill(opts, connection, mail);
    await drain(opts, connection);
    connection.disconnect();
    process.exit(0);
}

main().catch((err) => {
    process.stderr.write(`bullmq_send: ${err && err.stack ? err.stack : err}\n`);
    process.exit(1);
});
