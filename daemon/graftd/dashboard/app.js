// app.js - graftd's dashboard: the jobs and the workers, and for one job its
// optimisation history, Pareto fronts, cost per candidate and what saved it,
// the best candidate's lineage, a candidate's training curve and the
// leaderboard, drawn as SVG from the same API the command line uses.  Every
// two seconds it asks for the small, in-memory figures (the job, the
// workers) and fetches the rest again only when they changed.  No framework,
// no build.
'use strict';

const POLL_MS = 2000;
const token = new URLSearchParams(location.search).get('token');
let timer = null;
let shown = '';      // the figures last drawn: nothing is refetched when they have not changed
let selected = null; // the candidate whose training curve is shown (null: the best)

async function api(path) {
	const headers = token ? { Authorization: 'Bearer ' + token } : {};
	const r = await fetch(path, { headers });
	if (r.status === 401)
		throw new Error('This port needs graftd\'s token: open the page as ' +
		                location.origin + '/?token=TOKEN (graftd\'s http_token).');
	if (!r.ok)
		throw new Error(path + ': HTTP ' + r.status);
	return r.json();
}

function el(tag, attrs, ...children) {
	const svg = ['svg', 'g', 'circle', 'line', 'polyline', 'text', 'rect', 'title', 'path'];
	const e = svg.includes(tag) ? document.createElementNS('http://www.w3.org/2000/svg', tag)
	                            : document.createElement(tag);
	for (const [k, v] of Object.entries(attrs || {}))
		if (v !== undefined && v !== null)
			e.setAttribute(k, v);
	for (const c of children)
		e.append(c instanceof Node ? c : document.createTextNode(String(c)));
	return e;
}

const fmt = {
	acc: (v) => (typeof v === 'number' ? v.toFixed(4) : '-'),
	int: (v) => (typeof v === 'number' ? v.toLocaleString('en') : '-'),
	mflops: (v) => (typeof v === 'number' ? (v / 1e6).toFixed(2) : '-'),
	secs: (s) => {
		if (typeof s !== 'number')
			return '-';
		if (s < 10)
			return s.toFixed(1) + ' s';
		if (s < 90)
			return s.toFixed(0) + ' s';
		if (s < 5400)
			return (s / 60).toFixed(0) + ' min';
		return (s / 3600).toFixed(1) + ' h';
	},
};

function link(href, text) {
	const a = el('a', { href: href + (token ? (href.includes('?') ? '&' : '?') + 'token=' +
	                                          encodeURIComponent(token) : '') }, text);
	return a;
}

// ---- the jobs ---------------------------------------------------------------

function jobsView(jobs) {
	const rows = jobs.map((j) => {
		const b = j.budget || {};
		const left = typeof b.cpu_left_s === 'number' ? fmt.secs(b.cpu_left_s) + ' CPU'
		           : typeof b.time_left_s === 'number' ? fmt.secs(b.time_left_s) : '-';
		const tr = el('tr', { class: 'job', 'data-job': j.id },
			el('td', {}, String(j.id)),
			el('td', { class: 'left' }, j.name),
			el('td', { class: 'left' }, el('span', { class: 'state ' + j.state }, j.state)),
			el('td', {}, j.progress.evaluated + ' / ' + j.progress.total),
			el('td', { 'data-best': j.best ? j.best.val_accuracy : '' },
			   j.best ? fmt.acc(j.best.val_accuracy) : '-'),
			el('td', {}, left));
		tr.addEventListener('click', () => { location.hash = '#/jobs/' + j.id; });
		return tr;
	});
	return el('div', { class: 'card' },
		el('h1', {}, 'Jobs'),
		jobs.length ? el('table', { id: 'jobs' },
			el('thead', {}, el('tr', {}, ...['job', 'name', 'state', 'evaluated', 'best',
			                                  'budget left'].map((h, i) =>
				el('th', { class: i > 0 && i < 3 ? 'left' : null }, h)))),
			el('tbody', {}, ...rows))
		: el('p', { class: 'muted' }, 'No jobs yet: graft submit SPEC.yaml'));
}

// ---- charts -------------------------------------------------------------------

const W = 560, H = 300, PAD = { l: 48, r: 12, t: 10, b: 34 };

function scale(lo, hi, a, b) {
	const span = hi - lo || 1;
	return (v) => a + (v - lo) / span * (b - a);
}

function axes(svg, xlab, ylab, xs, ys, xticks, yticks) {
	svg.append(el('line', { class: 'axis', x1: PAD.l, y1: H - PAD.b, x2: W - PAD.r, y2: H - PAD.b }));
	svg.append(el('line', { class: 'axis', x1: PAD.l, y1: PAD.t, x2: PAD.l, y2: H - PAD.b }));
	for (const [v, label] of xticks)
		svg.append(el('text', { x: xs(v), y: H - PAD.b + 14, 'text-anchor': 'middle' }, label));
	for (const [v, label] of yticks)
		svg.append(el('text', { x: PAD.l - 4, y: ys(v) + 4, 'text-anchor': 'end' }, label));
	svg.append(el('text', { x: (PAD.l + W - PAD.r) / 2, y: H - 4, 'text-anchor': 'middle' }, xlab));
	const my = (PAD.t + H - PAD.b) / 2;
	svg.append(el('text', { x: 11, y: my, 'text-anchor': 'middle',
	                        transform: `rotate(-90 11 ${my})` }, ylab));
}

function accRange(rows) {
	const accs = rows.map((r) => r.val_accuracy);
	const lo = Math.max(0, Math.floor(Math.min(...accs) * 20) / 20);
	return [lo, Math.min(1, Math.ceil(Math.max(...accs) * 20) / 20 || 1)];
}

function ticks(lo, hi, n, f) {
	const out = [];
	for (let i = 0; i <= n; i++)
		out.push([lo + (hi - lo) * i / n, f(lo + (hi - lo) * i / n)]);
	return out;
}

// A chart's points as one string of SVG, parsed once: thousands of points
// cost a fraction of building each as an element.  What a point is shows
// on hover (one tooltip for the page, from its data attributes).
function points(svg, list) {
	const html = list.map(([r, x, y, front]) =>
		`<circle cx="${x.toFixed(1)}" cy="${y.toFixed(1)}" r="3.5" ` +
		`class="r${Math.min(r.rung || 0, 3)}${front ? ' onfront' : ''}" ` +
		`data-candidate="${r.candidate}" data-seq="${r.seq}" data-acc="${r.val_accuracy}" ` +
		`data-rung="${r.rung}" data-params="${r.params}" data-flops="${r.flops}"></circle>`);
	const g = el('g', { class: 'points' });
	g.innerHTML = html.join('');
	svg.append(g);
}

function showTip(ev) {
	const tip = document.getElementById('tip');
	const c = ev.target.closest && ev.target.closest('circle[data-candidate]');
	if (!c) {
		tip.hidden = true;
		return;
	}
	const d = c.dataset;
	tip.textContent = `candidate ${d.candidate} (#${d.seq}): ${fmt.acc(Number(d.acc))} at rung ` +
		`${d.rung}, ${fmt.int(Number(d.params))} params, ${fmt.mflops(Number(d.flops))} MFLOPs`;
	tip.style.left = Math.min(ev.pageX + 12, document.body.clientWidth - 260) + 'px';
	tip.style.top = ev.pageY + 12 + 'px';
	tip.hidden = false;
}

// Every scored candidate by its place in the job, and the best so far.
function historyChart(rows) {
	const svg = el('svg', { id: 'history', viewBox: `0 0 ${W} ${H}`, role: 'img' });
	if (!rows.length)
		return svg;
	const bySeq = rows.slice().sort((a, b) => a.seq - b.seq);
	const maxSeq = bySeq[bySeq.length - 1].seq;
	const [lo, hi] = accRange(rows);
	const xs = scale(0, Math.max(1, maxSeq), PAD.l, W - PAD.r);
	const ys = scale(lo, hi, H - PAD.b, PAD.t);
	axes(svg, 'candidate (in the order asked)', 'validation accuracy', xs, ys,
	     ticks(0, Math.max(1, maxSeq), 4, (v) => v.toFixed(0)), ticks(lo, hi, 4, (v) => v.toFixed(2)));
	let best = -1;
	const line = [];
	for (const r of bySeq) {
		if (r.val_accuracy > best) {
			if (line.length)
				line.push(`${xs(r.seq).toFixed(1)},${ys(best).toFixed(1)}`);
			best = r.val_accuracy;
			line.push(`${xs(r.seq).toFixed(1)},${ys(best).toFixed(1)}`);
		}
	}
	points(svg, bySeq.map((r) => [r, xs(r.seq), ys(r.val_accuracy), false]));
	line.push(`${xs(maxSeq).toFixed(1)},${ys(best).toFixed(1)}`);
	svg.append(el('polyline', { class: 'best', points: line.join(' ') }));
	return svg;
}

// Accuracy against cost (log scale), the front joined.
function paretoChart(id, rows, front, key, label) {
	const svg = el('svg', { id, viewBox: `0 0 ${W} ${H}`, role: 'img' });
	if (!rows.length)
		return svg;
	const onFront = new Set(front.map((r) => r.candidate));
	const costs = rows.map((r) => Math.max(1, r[key]));
	const lo = Math.log10(Math.min(...costs)), hi = Math.log10(Math.max(...costs));
	const [alo, ahi] = accRange(rows);
	const xs = scale(lo, hi === lo ? lo + 1 : hi, PAD.l, W - PAD.r);
	const ys = scale(alo, ahi, H - PAD.b, PAD.t);
	const f = key === 'flops' ? (v) => (10 ** v / 1e6).toPrecision(2) + 'M'
	                          : (v) => (10 ** v / 1e3).toPrecision(2) + 'k';
	axes(svg, label + ' (log scale)', 'validation accuracy', xs, ys, ticks(lo, hi, 3, f),
	     ticks(alo, ahi, 4, (v) => v.toFixed(2)));
	points(svg, rows.map((r) => [r, xs(Math.log10(Math.max(1, r[key]))), ys(r.val_accuracy),
	                             onFront.has(r.candidate)]));
	svg.append(el('polyline', { class: 'front', points: front.map((r) =>
		`${xs(Math.log10(Math.max(1, r[key]))).toFixed(1)},${ys(r.val_accuracy).toFixed(1)}`)
		.join(' ') }));
	return svg;
}

function legend() {
	return el('div', { class: 'legend' }, ...[0, 1, 2, 3].map((r) =>
		el('span', {}, el('i', { style: `background: var(--r${r})` }), 'rung ' + r)),
		el('span', {}, el('i', { style: 'background: var(--best)' }), 'best so far / front'));
}

// ---- workers -------------------------------------------------------------------

function workersView(workers) {
	const now = Date.now() / 1000;
	return el('div', { class: 'card wide', id: 'workers' }, el('h2', {}, 'Workers'),
		el('table', {},
			el('thead', {}, el('tr', {}, ...['worker', 'pid', 'state', 'job', 'task', 'candidate',
			                                  'rung', 'step', 'loss', 'for'].map((h) => el('th', {}, h)))),
			el('tbody', {}, ...workers.map((w) => {
				const t = w.task;
				return el('tr', { 'data-slot': w.slot, 'data-state': w.state },
					el('td', {}, String(w.slot)), el('td', {}, w.pid === null ? '-' : String(w.pid)),
					el('td', { title: w.slurm || null }, w.state),
					el('td', {}, t && t.job !== null ? String(t.job) : '-'),
					el('td', {}, t ? t.kind : w.slurm || '-'), el('td', {}, t ? '#' + t.seq : '-'),
					el('td', {}, t ? String(t.rung) : '-'),
					el('td', { class: 'step' }, t && t.steps ? t.step + ' / ' + t.steps : '-'),
					el('td', {}, t && typeof t.loss === 'number' ? t.loss.toFixed(3) : '-'),
					el('td', {}, t ? fmt.secs(Math.max(0, now - t.since)) : '-'));
			}))));
}

// ---- cost, lineage, curves -----------------------------------------------------

// CPU per candidate over the job (slices by seq), and the CPU each saving
// spared, summed over the job.
function costView(parts) {
	const svg = el('svg', { id: 'costs', viewBox: `0 0 ${W} ${H}`, role: 'img' });
	const total = { cache: 0, inheritance: 0, early_stopping: 0 };
	const count = { cache_hits: 0, inherited: 0, stopped_early: 0, feature_cache: 0, candidates: 0 };
	let spent = 0;
	for (const p of parts) {
		for (const k in total)
			total[k] += p.saved_cpu_s[k];
		for (const k in count)
			count[k] += p[k];
		spent += p.cpu_s;
	}
	if (parts.length) {
		const hi = Math.max(...parts.map((p) => p.cpu_per_candidate)) * 1.1 || 1;
		const xs = scale(0, parts.length, PAD.l, W - PAD.r), ys = scale(0, hi, H - PAD.b, PAD.t);
		axes(svg, 'candidates (slices of the job, in the order asked)', 'CPU-s per candidate', xs,
		     ys, parts.map((p, i) => [i + 0.5, p.first_seq + '-' + p.last_seq]).filter((t, i) =>
		         parts.length <= 5 || i % Math.ceil(parts.length / 5) === 0),
		     ticks(0, hi, 4, (v) => (hi < 4 ? v.toFixed(2) : v.toFixed(0))));
		parts.forEach((p, i) => svg.append(el('rect', {
			class: 'bar', x: (xs(i) + 2).toFixed(1), width: (xs(1) - xs(0) - 4).toFixed(1),
			y: ys(p.cpu_per_candidate).toFixed(1),
			height: (ys(0) - ys(p.cpu_per_candidate)).toFixed(1),
			'data-cpu': p.cpu_per_candidate },
			el('title', {}, `#${p.first_seq}-${p.last_seq}: ${p.cpu_per_candidate.toFixed(1)} CPU-s ` +
			   `per candidate, ${p.mean_steps.toFixed(0)} steps on average`))));
	}
	const row = (what, why, n, saved) => el('tr', {}, el('td', { class: 'left', title: why }, what),
		el('td', {}, n), el('td', {}, saved === null ? '-' : fmt.secs(saved)));
	return el('div', {}, svg,
		el('table', { id: 'savings' },
			el('thead', {}, el('tr', {}, el('th', { class: 'left' }, 'saved by'),
			                   el('th', {}, 'candidates'), el('th', {}, 'CPU saved'))),
			el('tbody', {},
				row('the cache', 'answered from the store: trained before', count.cache_hits,
				    total.cache),
				row('inheritance', 'started from the parent\'s weights', count.inherited,
				    total.inheritance),
				row('early stopping', 'stopped below the top rung (estimate)', count.stopped_early,
				    total.early_stopping),
				row('graft features', 'the graft\'s features computed once, not per step (not ' +
				    'measured)', count.feature_cache, null),
				el('tr', { class: 'total' }, el('td', { class: 'left' }, 'spent'),
				   el('td', {}, count.candidates), el('td', {}, fmt.secs(spent))))));
}

function lineageView(l) {
	if (!l.lineage.length)
		return el('p', { class: 'muted' }, 'No candidate scored yet.');
	const gain = (g) => (typeof g === 'number' ? (g >= 0 ? '+' : '') + g.toFixed(4) : '-');
	return el('table', { id: 'lineage' },
		el('thead', {}, el('tr', {}, ...['candidate', 'made by', 'score (rung)', 'gain']
			.map((h, i) => el('th', { class: i === 1 ? 'left' : null }, h)))),
		el('tbody', {}, ...l.lineage.map((a) => el('tr', { 'data-candidate': a.candidate,
		                                                   class: 'pick' },
			el('td', {}, '#' + a.seq), el('td', { class: 'left' }, a.mutation || 'random sample'),
			el('td', {}, fmt.acc(a.fitness) + ' (' + a.rung + ')'),
			el('td', { class: typeof a.gain === 'number' && a.gain > 0 ? 'up' : null },
			   gain(a.gain))))));
}

// The training loss its workers reported, over every rung it trained.
function curveView(cand) {
	const svg = el('svg', { id: 'curve', viewBox: `0 0 ${W} ${H}`, role: 'img',
	                        'data-candidate': cand.id });
	// Each evaluation counts its own steps: a climb goes on after the rungs
	// below it, so its curve starts where theirs ended.
	const pts = [];
	let before = 0;
	for (const e of cand.evaluations) {
		if (e.status !== 'done')
			continue;
		for (const [step, loss] of e.curve || [])
			if (typeof loss === 'number')
				pts.push({ step: before + step, loss, rung: e.rung || 0 });
		before += e.steps;
	}
	const title = el('h2', {}, `Training curve: candidate #${cand.seq}`);
	if (!pts.length)
		return el('div', {}, title, el('p', { class: 'muted' },
			'No curve was recorded (an answer from the cache, or trained before graftd kept them).'));
	const hiStep = Math.max(...pts.map((p) => p.step)), hiLoss = Math.max(...pts.map((p) => p.loss));
	const xs = scale(0, hiStep, PAD.l, W - PAD.r), ys = scale(0, hiLoss * 1.05, H - PAD.b, PAD.t);
	axes(svg, 'step', 'training loss', xs, ys, ticks(0, hiStep, 4, (v) => v.toFixed(0)),
	     ticks(0, hiLoss * 1.05, 4, (v) => v.toFixed(2)));
	svg.append(el('polyline', { class: 'curve', points: pts.map((p) =>
		`${xs(p.step).toFixed(1)},${ys(p.loss).toFixed(1)}`).join(' ') }));
	for (const p of pts)
		svg.append(el('circle', { cx: xs(p.step).toFixed(1), cy: ys(p.loss).toFixed(1), r: 2,
		                          class: 'r' + Math.min(p.rung, 3), 'data-step': p.step }));
	const scores = cand.evaluations.filter((e) => e.status === 'done').map((e) =>
		`rung ${e.rung || 0}: ${fmt.acc(e.val_accuracy)} after ${e.steps} steps`);
	return el('div', {}, title, svg, el('p', { class: 'muted' }, scores.join('; ')));
}

// ---- one job --------------------------------------------------------------------

function leaderboardTable(rows) {
	return el('table', { id: 'leaderboard' },
		el('thead', {}, el('tr', {}, ...['rank', 'candidate', 'rung', 'accuracy', 'params',
		                                  'MFLOPs', 'CPU-s', 'export'].map((h) => el('th', {}, h)))),
		el('tbody', {}, ...rows.slice(0, 20).map((r) => el('tr', { 'data-candidate': r.candidate,
		                                                        class: 'pick' },
			el('td', {}, String(r.rank)), el('td', {}, String(r.candidate)),
			el('td', {}, String(r.rung)), el('td', { class: 'acc' }, fmt.acc(r.val_accuracy)),
			el('td', {}, fmt.int(r.params)), el('td', {}, fmt.mflops(r.flops)),
			el('td', {}, r.cpu_s.toFixed(1)),
			el('td', {}, link(`/v1/candidates/${r.candidate}/export`, 'YAML'), ' ',
			   link(`/v1/candidates/${r.candidate}/weights`, 'weights'), ' ',
			   link(`/v1/candidates/${r.candidate}/onnx`, 'ONNX'))))));
}

function jobView(job, board, byParams, byFlops, costs, lineage, cand) {
	const rows = board.candidates;
	const b = job.budget || {};
	const fig = (name, value) => el('span', {}, name + ' ', el('b', {}, value));
	return el('div', {},
		el('h1', {}, `Job ${job.id}: ${job.name} `, el('span', { class: 'state ' + job.state },
		                                              job.state)),
		el('div', { class: 'figures' },
			fig('evaluated', job.progress.evaluated + ' / ' + job.progress.total),
			fig('best', job.best ? fmt.acc(job.best.val_accuracy) : '-'),
			fig('CPU', fmt.secs(job.cost.cpu_s)),
			fig('per candidate', fmt.secs(job.cost.cpu_per_candidate)),
			fig('budget left', typeof b.cpu_left_s === 'number' ? fmt.secs(b.cpu_left_s) + ' CPU'
			    : typeof b.time_left_s === 'number' ? fmt.secs(b.time_left_s) : 'none set'),
			job.final && job.final.winner ? fig('final test accuracy',
			                                    fmt.acc(job.final.winner.test_accuracy)) : ''),
		legend(),
		el('div', { class: 'grid' },
			el('div', { class: 'card' }, el('h2', {}, 'Optimisation history'), historyChart(rows)),
			el('div', { class: 'card' }, el('h2', {}, 'Pareto front: accuracy vs parameters'),
			   paretoChart('pareto-params', rows, byParams.front, 'params', 'parameters')),
			el('div', { class: 'card' }, el('h2', {}, 'Pareto front: accuracy vs MFLOPs'),
			   paretoChart('pareto-flops', rows, byFlops.front, 'flops', 'FLOPs per image')),
			el('div', { class: 'card' }, el('h2', {}, 'Cost per candidate, and what saved it'),
			   costView(costs.parts)),
			el('div', { class: 'card' }, el('h2', {}, 'Lineage of the best candidate'),
			   lineageView(lineage)),
			el('div', { class: 'card', id: 'curve-card' }, cand ? curveView(cand)
			   : el('p', { class: 'muted' }, 'No candidate scored yet.')),
			el('div', { class: 'card wide' }, el('h2', {}, 'Leaderboard (click a row for its curve)'),
			   leaderboardTable(rows)),
			el('div', { id: 'workers-slot', class: 'wide-slot' })));
}

// ---- routing and polling -----------------------------------------------------

// The figures of a job that change when anything the page draws changes.
function figuresKey(job) {
	return JSON.stringify([job.state, job.phase, job.progress, job.best, job.cost, job.final]);
}

async function render() {
	const main = document.getElementById('main');
	const m = location.hash.match(/^#\/jobs\/(\d+)/);
	try {
		const [first, workers] = await Promise.all([m ? api(`/v1/jobs/${m[1]}`) : api('/v1/jobs'),
		                                            api('/v1/workers')]);
		const key = location.hash + (m ? figuresKey(first) : JSON.stringify(first)) + selected;
		if (key !== shown) {
			let view;
			if (m) {
				const id = m[1];
				const data = await Promise.all([api(`/v1/jobs/${id}/leaderboard?limit=10000`),
					api(`/v1/jobs/${id}/pareto?by=params`), api(`/v1/jobs/${id}/pareto?by=flops`),
					api(`/v1/jobs/${id}/costs?parts=12`), api(`/v1/jobs/${id}/lineage`)]);
				const pick = selected || (first.best && first.best.candidate);
				const cand = pick ? await api(`/v1/candidates/${pick}`) : null;
				view = jobView(first, ...data, cand);
			} else {
				view = el('div', {}, jobsView(first.jobs), el('div', { id: 'workers-slot' }));
			}
			main.replaceChildren(view);
			shown = key;
		}
		const slot = document.getElementById('workers-slot');
		if (slot)
			slot.replaceChildren(workersView(workers.workers));
		const h = await api('/v1/health');
		document.getElementById('health').textContent =
			`graftd ${h.version}, up ${fmt.secs(h.uptime_s)}; workers ${h.workers.busy} busy, ` +
			`${h.workers.idle} idle` + (h.workers.starting ? `, ${h.workers.starting} starting` : '') +
			(h.workers.pending ? `, ${h.workers.pending} pending in Slurm's queue` : '');
	} catch (e) {
		main.replaceChildren(el('p', { class: 'error' }, String(e.message || e)));
		shown = '';
	}
	document.body.dataset.rendered = String(Date.now());
}

function poll() {
	clearTimeout(timer);
	render().finally(() => { timer = setTimeout(poll, POLL_MS); });
}

// A click on a leaderboard row or a chart's point shows that candidate's curve.
document.addEventListener('click', (ev) => {
	const t = ev.target.closest('tr.pick, svg circle[data-candidate]');
	if (!t || !location.hash.startsWith('#/jobs/'))
		return;
	selected = Number(t.dataset.candidate);
	poll();
});

document.addEventListener('mouseover', showTip);

window.addEventListener('hashchange', () => { shown = ''; selected = null; poll(); });
poll();
