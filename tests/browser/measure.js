// measure.js - how the dashboard copes with a big job, in headless Chromium
// (for tests/bench/dashboard.sh; a measurement, not a test):
//
//   node tests/browser/measure.js BASE_URL JOB
//
// Prints the job's size, the time from navigation to the full first render
// (every leaderboard candidate a point of the history), the JavaScript heap
// and DOM nodes then, the longest main-thread task, what a poll that finds
// nothing new costs, and the time from a click on a leaderboard row to that
// candidate's curve.  One run; wall-clock times.
'use strict';
const puppeteer = require('puppeteer-core');
const http = require('http');

const [base, job] = process.argv.slice(2);

function get(path) {
	return new Promise((resolve, reject) => {
		http.get(base + path, (res) => {
			let body = '';
			res.on('data', (d) => { body += d; });
			res.on('end', () => resolve({ status: res.statusCode, bytes: body.length,
			                              json: JSON.parse(body) }));
		}).on('error', reject);
	});
}

async function main() {
	const board = await get(`/v1/jobs/${job}/leaderboard?limit=10000`);
	const points = board.json.candidates.length;
	const browser = await puppeteer.launch({
		executablePath: process.env.CHROMIUM || '/usr/bin/chromium', headless: true,
		args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
	});
	const errors = [];
	try {
		const page = await browser.newPage();
		page.on('pageerror', (e) => errors.push(e.message));
		await page.setViewport({ width: 1280, height: 800 });
		await page.evaluateOnNewDocument(() => {
			window.__longest = 0;
			new PerformanceObserver((l) => {
				for (const e of l.getEntries())
					window.__longest = Math.max(window.__longest, e.duration);
			}).observe({ entryTypes: ['longtask'] });
		});
		const t0 = Date.now();
		await page.goto(`${base}/#/jobs/${job}`);
		await page.waitForFunction((n) => document.querySelectorAll('#history circle').length === n &&
			document.querySelector('#curve-card h2'), { timeout: 120000, polling: 50 }, points);
		const firstRenderMs = Date.now() - t0;
		const m = await page.metrics();
		// A poll that finds nothing new: the time between two renders' ends
		// minus the 2 s wait, and whether the DOM was left alone.
		const r0 = await page.evaluate(() => Number(document.body.dataset.rendered));
		await page.evaluate(() => { document.querySelector("#history").dataset.mark = "x"; });
		await page.waitForFunction((r) => Number(document.body.dataset.rendered) > r, { timeout: 10000 }, r0);
		const idle = await page.evaluate((r) => ({ gap: Number(document.body.dataset.rendered) - r,
			kept: document.querySelector('#history').dataset.mark === 'x' }), r0);
		// A click on the 10th row: its candidate's curve.
		const pick = board.json.candidates[Math.min(9, points - 1)].candidate;
		const t1 = Date.now();
		await page.click(`#leaderboard tr[data-candidate="${pick}"]`);
		await page.waitForSelector(`#curve[data-candidate="${pick}"], #curve-card p.muted`,
		                           { timeout: 60000 });
		const clickMs = Date.now() - t1;
		const longest = await page.evaluate(() => window.__longest);
		console.log(JSON.stringify({
			job: Number(job), leaderboard_points: points, leaderboard_json_bytes: board.bytes,
			first_render_ms: firstRenderMs, js_heap_used_mb: +(m.JSHeapUsedSize / 1048576).toFixed(1),
			js_heap_total_mb: +(m.JSHeapTotalSize / 1048576).toFixed(1), dom_nodes: m.Nodes,
			longest_task_ms: Math.round(longest), idle_poll_gap_ms: idle.gap,
			idle_poll_redrew: !idle.kept, click_to_curve_ms: clickMs, errors,
			chromium: await browser.version(),
		}));
	} finally {
		await browser.close();
	}
}

main().catch((e) => { console.error(String(e && e.stack || e)); process.exit(1); });
