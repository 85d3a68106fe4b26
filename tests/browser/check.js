// check.js - opens graftd's dashboard in a real headless Chromium (Debian's,
// driven by puppeteer-core) and checks what it draws against the API it
// reads.  For tests/test_dashboard.c:
//
//   node tests/browser/check.js BASE_URL JOB OUT_DIR
//
// Fails (exit 1, the reasons on stderr) when the page throws a JavaScript
// error or logs one, when a leaderboard candidate is missing from the
// history, when the points marked on a Pareto chart are not exactly the
// API's front, when a number in the table differs from the API's, or when
// the workers, cost, lineage and curve views disagree with the API (and a
// click on a leaderboard row must show that candidate's curve).
// Writes screenshots at 1280x800 and at a phone's 390x844 into OUT_DIR and
// prints a JSON line of what it saw (and the time to the first chart).
'use strict';
const puppeteer = require('puppeteer-core');
const http = require('http');

const [base, job, out] = process.argv.slice(2);
const problems = [];

function get(path) {
	return new Promise((resolve, reject) => {
		http.get(base + path, (res) => {
			let body = '';
			res.on('data', (d) => { body += d; });
			res.on('end', () => (res.statusCode === 200 ? resolve(JSON.parse(body))
			                     : reject(new Error(path + ': HTTP ' + res.statusCode))));
		}).on('error', reject);
	});
}

function sameSet(name, got, want) {
	const g = [...new Set(got)].sort((a, b) => a - b), w = [...new Set(want)].sort((a, b) => a - b);
	if (JSON.stringify(g) !== JSON.stringify(w))
		problems.push(`${name}: the page has [${g}], the API [${w}]`);
}

async function main() {
	const browser = await puppeteer.launch({
		executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
		headless: true,
		args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
	});
	try {
		const page = await browser.newPage();
		page.on('pageerror', (e) => problems.push('JavaScript error: ' + e.message));
		page.on('console', (m) => { if (m.type() === 'error') problems.push('console: ' + m.text()); });
		await page.setViewport({ width: 1280, height: 800 });
		const t0 = Date.now();
		await page.goto(`${base}/#/jobs/${job}`);
		await page.waitForSelector('#history circle', { timeout: 20000 });
		const firstChartMs = Date.now() - t0;
		const [board, byParams, byFlops] = await Promise.all([
			get(`/v1/jobs/${job}/leaderboard?limit=10000`), get(`/v1/jobs/${job}/pareto?by=params`),
			get(`/v1/jobs/${job}/pareto?by=flops`)]);
		const seen = await page.evaluate(() => {
			const ids = (sel) => [...document.querySelectorAll(sel)].map((e) => Number(e.dataset.candidate));
			return {
				history: ids('#history circle'),
				frontParams: ids('#pareto-params circle.onfront'),
				frontFlops: ids('#pareto-flops circle.onfront'),
				table: [...document.querySelectorAll('#leaderboard tbody tr')].map((tr) => ({
					candidate: Number(tr.dataset.candidate),
					acc: tr.querySelector('td.acc').textContent })),
			};
		});
		sameSet('history', seen.history, board.candidates.map((r) => r.candidate));
		sameSet('Pareto front (parameters)', seen.frontParams, byParams.front.map((r) => r.candidate));
		sameSet('Pareto front (MFLOPs)', seen.frontFlops, byFlops.front.map((r) => r.candidate));
		board.candidates.slice(0, 20).forEach((r, i) => {
			const row = seen.table[i];
			if (!row || row.candidate !== r.candidate || row.acc !== r.val_accuracy.toFixed(4))
				problems.push(`leaderboard row ${i + 1}: the page has ${JSON.stringify(row)}, the ` +
				              `API candidate ${r.candidate} at ${r.val_accuracy.toFixed(4)}`);
		});
		// The other views: the workers, the cost chart, the lineage, the curve.
		const [workers, costs, lineage] = await Promise.all([get('/v1/workers'),
			get(`/v1/jobs/${job}/costs?parts=12`), get(`/v1/jobs/${job}/lineage`)]);
		await page.waitForSelector('#workers tbody tr');
		const views = await page.evaluate(() => ({
			workers: document.querySelectorAll('#workers tbody tr').length,
			bars: document.querySelectorAll('#costs rect.bar').length,
			lineage: [...document.querySelectorAll('#lineage tbody tr')].map((tr) =>
				Number(tr.dataset.candidate)),
			curveOf: Number(document.querySelector('#curve').dataset.candidate),
			curvePoints: document.querySelectorAll('#curve circle').length,
			cacheRow: document.querySelector('#savings tbody tr td:nth-child(2)').textContent,
		}));
		if (views.workers !== workers.workers.length)
			problems.push(`workers: the page lists ${views.workers}, the API ${workers.workers.length}`);
		if (views.bars !== costs.parts.length)
			problems.push(`cost chart: ${views.bars} bars, the API has ${costs.parts.length} parts`);
		const hits = costs.parts.reduce((a, p) => a + p.cache_hits, 0);
		if (views.cacheRow !== String(hits))
			problems.push(`savings: the page says ${views.cacheRow} cache hits, the API ${hits}`);
		if (JSON.stringify(views.lineage) !== JSON.stringify(lineage.lineage.map((a) => a.candidate)))
			problems.push(`lineage: the page has [${views.lineage}], the API ` +
			              `[${lineage.lineage.map((a) => a.candidate)}]`);
		const curvePoints = async (id) => {
			const c = await get(`/v1/candidates/${id}`);
			return c.evaluations.filter((e) => e.status === 'done')
				.reduce((a, e) => a + (e.curve || []).filter((p) => typeof p[1] === 'number').length, 0);
		};
		if (views.curveOf !== board.candidates[0].candidate)
			problems.push(`the curve shown is candidate ${views.curveOf}'s, not the best's`);
		else if (views.curvePoints !== await curvePoints(views.curveOf))
			problems.push(`curve: ${views.curvePoints} points, the API ${await curvePoints(views.curveOf)}`);
		// Hovering a point names its candidate.
		const first = board.candidates[0].candidate;
		await page.hover(`#history circle[data-candidate="${first}"]`);
		const tip = await page.$eval('#tip', (t) => (t.hidden ? '' : t.textContent));
		if (!tip.startsWith(`candidate ${first} `))
			problems.push(`hovering candidate ${first}'s point shows "${tip}"`);
		// A poll that finds the job unchanged leaves the charts alone.
		const r0 = await page.evaluate(() => {
			document.querySelector('#history').dataset.mark = 'kept';
			return Number(document.body.dataset.rendered);
		});
		await page.waitForFunction((r) => Number(document.body.dataset.rendered) > r,
		                           { timeout: 10000 }, r0);
		if (await page.evaluate(() => document.querySelector('#history').dataset.mark) !== 'kept')
			problems.push('a poll that found nothing new redrew the page');
		// A click on another leaderboard row shows that candidate's curve.
		if (board.candidates.length > 1) {
			const other = board.candidates[1].candidate;
			await page.click(`#leaderboard tr[data-candidate="${other}"]`);
			await page.waitForSelector(`#curve[data-candidate="${other}"], ` +
			                           `#curve-card h2 + p.muted`, { timeout: 10000 });
		}
		await page.screenshot({ path: `${out}/dashboard-1280.png`, fullPage: true });
		await page.setViewport({ width: 390, height: 844, isMobile: true });
		await page.waitForSelector('#history circle');
		await page.screenshot({ path: `${out}/dashboard-390.png`, fullPage: true });
		await page.goto(`${base}/`);
		await page.waitForSelector('#jobs tr.job');
		const jobs = await page.$$eval('#jobs tr.job', (rows) => rows.length);
		if (jobs < 1)
			problems.push('the jobs list is empty');
		console.log(JSON.stringify({ first_chart_ms: firstChartMs, points: seen.history.length,
			front_params: seen.frontParams.length, front_flops: seen.frontFlops.length, jobs }));
	} finally {
		await browser.close();
	}
	if (problems.length) {
		console.error(problems.join('\n'));
		process.exit(1);
	}
}

main().catch((e) => { console.error(String(e && e.stack || e)); process.exit(1); });
