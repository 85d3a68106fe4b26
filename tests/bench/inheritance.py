#!/usr/bin/python3
"""What weight inheritance does at equal steps, measured on a finished search.

For the first K children of a `graft search` store that inherited their
parent's weights, trains the same genome again from a fresh start with
`graft train` (frozen graft, same recipe, seed, steps and validation split)
and compares validation accuracy: inherited vs fresh at the child's steps,
and fresh at the job's full steps.  Standard library only.

usage: tests/bench/inheritance.py STORE.db GRAFT_FILE [--children K] [--validation N]
"""
import argparse, math, os, re, sqlite3, subprocess, sys, tempfile

def train(genome, steps, graft, validation, threads):
    with tempfile.NamedTemporaryFile('w', suffix='.yaml', delete=False) as f:
        f.write(genome)
        path = f.name
    out = subprocess.run(['bin/graft', 'train', path, '--steps', str(steps), '--graft', 'frozen',
                          '--graft-file', graft, '--validation', str(validation),
                          '--threads', str(threads), '--out', path + '.safetensors'],
                         capture_output=True, text=True)
    os.unlink(path)
    if os.path.exists(path + '.safetensors'):
        os.unlink(path + '.safetensors')
    m = re.search(r'validation accuracy ([0-9.]+)', out.stdout)
    if not m:
        sys.exit('graft train failed:\n' + out.stdout + out.stderr)
    return float(m.group(1))

def mean_ci(d):
    n = len(d)
    m = sum(d) / n
    sd = math.sqrt(sum((x - m) ** 2 for x in d) / (n - 1)) if n > 1 else float('nan')
    return m, 1.96 * sd / math.sqrt(n) if n > 1 else float('nan')

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('db')
    ap.add_argument('graft')
    ap.add_argument('--children', type=int, default=20)
    ap.add_argument('--validation', type=int, default=10000)
    ap.add_argument('--threads', type=int, default=1)
    a = ap.parse_args()
    db = sqlite3.connect(a.db)
    full = db.execute('SELECT steps FROM jobs ORDER BY id LIMIT 1').fetchone()[0]
    rows = db.execute(
        "SELECT c.seq, c.genome, e.steps, e.val_accuracy FROM evaluations e "
        "JOIN candidates c ON c.id = e.candidate_id WHERE e.status = 'done' AND "
        "e.cached = 0 AND e.inherited > 0 ORDER BY c.seq LIMIT ?", (a.children,)).fetchall()
    print('%5s %7s %12s %12s %12s' % ('cand', 'steps', 'inherited', 'fresh', 'fresh@%d' % full))
    inh, fr, frfull = [], [], []
    for seq, genome, steps, acc in rows:
        f = train(genome, steps, a.graft, a.validation, a.threads)
        ff = train(genome, full, a.graft, a.validation, a.threads)
        inh.append(acc); fr.append(f); frfull.append(ff)
        print('%5d %7d %12.4f %12.4f %12.4f' % (seq, steps, acc, f, ff), flush=True)
    d1 = mean_ci([x - y for x, y in zip(inh, fr)])
    d2 = mean_ci([x - y for x, y in zip(inh, frfull)])
    print('\n%d children: inherited %.4f, fresh at the same steps %.4f, fresh at %d steps %.4f'
          % (len(rows), sum(inh) / len(inh), sum(fr) / len(fr), full, sum(frfull) / len(frfull)))
    print('inherited - fresh, same steps:  %+.4f +- %.4f (95%% CI)' % d1)
    print('inherited - fresh, %d steps:    %+.4f +- %.4f (95%% CI)' % (full, d2[0], d2[1]))

if __name__ == '__main__':
    main()
