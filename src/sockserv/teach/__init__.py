"""Lesson helpers: the tools the notebooks use to make the invisible visible.

This is the course's third layer: it may use the core (``sockserv``) and the
examples (``sockserv.examples``); neither of them imports anything from here.

* ``harness``  what every lesson, check and test shares: IMPLEMENTATIONS, the
  address and timeouts, the client ``talk()``, ``serving()``,
  ``run_bounded()`` and ``recording_errors()``
* ``serving``  ``serving()`` under its first name (the same object as
  ``harness.serving``)
* ``checks``   ExerciseFailed and its one-sentence rule, ``check()``,
  ``passed()``, ``require_filled_in()`` for ``...`` placeholders
* ``trace``    records which hooks run, in which order and nested in which
  call, on servers and handlers
* ``diagram``  draws class families, the mix-in x server table, and call
  sequences (flat or nested) from live classes and recorded runs
* ``mermaid``  the display object of a diagram: a picture in Jupyter, its
  Mermaid source as text
* ``measure``  runs servers in child processes and measures them (echo rate,
  memory per chat client, fan-out time, clients held): lesson 10's plots and
  benchmarks/bench_engines.py
* ``lessonNN`` the checks and data of lesson NN's exercises, nothing else
"""
