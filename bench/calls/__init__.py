"""How many concurrent video calls one Rapport server process carries at 30 fps: ``python -m bench.calls``.

conductor.py runs the bench (servers, client workers, the window); client.py is a client worker process;
sources.py what the clients' cameras show; procstat.py reads CPU and memory from /proc; report.py holds the
options, the results, the pass rule and the table. See bench/README.md.
"""
