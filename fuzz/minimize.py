#!/usr/bin/env python3
"""Adds the most useful new inputs of a fuzzing run to a committed corpus, at most N files.

  python3 fuzz/minimize.py FUZZER CORPUS NEW_DIR [N=290] [libFuzzer flags...]

Runs FUZZER -merge=1 with a merge control file over CORPUS (kept whole) and NEW_DIR,
then copies from NEW_DIR, greedily, the input adding the most coverage edges (then
features) not yet covered by CORPUS and the inputs already picked, until nothing adds
anything or CORPUS holds N files. Names are the SHA-1 of the content, as libFuzzer's.
"""
import hashlib, os, shutil, subprocess, sys, tempfile

fuzzer, corpus, new = sys.argv[1:4]
limit = int(sys.argv[4]) if len(sys.argv) > 4 else 290
flags = sys.argv[5:]
tmp = tempfile.mkdtemp(prefix='batchq-minimize.')
cf = os.path.join(tmp, 'control')
os.makedirs(os.path.join(tmp, 'out'))
subprocess.run([fuzzer, '-merge=1', '-merge_control_file=' + cf, *flags,
                os.path.join(tmp, 'out'), corpus, new],
               check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
lines = open(cf).read().split('\n')
nfiles, nfirst = int(lines[0]), int(lines[1])
files = lines[2:2 + nfiles]
ft, cov = {}, {}
for line in lines[2 + nfiles:]:
    parts = line.split()
    if len(parts) >= 2 and parts[0] in ('FT', 'COV'):
        (ft if parts[0] == 'FT' else cov)[int(parts[1])] = set(map(int, parts[2:]))
all_cov = set().union(*cov.values()) if cov else set()
all_ft = set().union(*ft.values()) if ft else set()
have_ft, have_cov = set(), set()
for i in range(nfirst):
    have_ft |= ft.get(i, set()); have_cov |= cov.get(i, set())
cands = [i for i in range(nfirst, nfiles) if i in ft]
count = len(os.listdir(corpus))
added = 0
while count < limit and cands:
    best = max(cands, key=lambda i: (len(cov.get(i, set()) - have_cov), len(ft[i] - have_ft),
                                     -os.path.getsize(files[i])))
    if not (cov.get(best, set()) - have_cov) and not (ft[best] - have_ft):
        break
    have_cov |= cov.get(best, set()); have_ft |= ft[best]
    data = open(files[best], 'rb').read()
    dst = os.path.join(corpus, hashlib.sha1(data).hexdigest())
    if not os.path.exists(dst):
        shutil.copyfile(files[best], dst)
        count += 1; added += 1
    cands.remove(best)
shutil.rmtree(tmp)
print('minimize: added %d inputs to %s (%d files), covering %d of %d edges, %d of %d features'
      % (added, corpus, count, len(have_cov), len(all_cov), len(have_ft), len(all_ft)))
