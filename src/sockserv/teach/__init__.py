"""Lesson helpers: the tools the notebooks use to make the invisible visible.

This is the course's third layer: it may use the core (``sockserv``) and the
examples (``sockserv.examples``); neither of them imports anything from here.

* ``trace``    records which hooks run, in which order, on servers and handlers
* ``diagram``  draws class hierarchies and call sequences as Mermaid diagrams
* ``serving``  runs a server in a background thread for the length of a block
* ``checks``   exercise checks that explain a failure in one sentence
* ``lessonNN`` the checks of lesson NN's exercises
"""
