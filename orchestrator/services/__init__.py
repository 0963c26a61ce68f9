"""One function per operation; every front end (CLI, HTTP API, pages, workers) calls these.

The conventions each service keeps:

- It takes the application (:func:`orchestrator.app.build_app`) and the acting
  :class:`~orchestrator.intake.registry.Person` (authenticated by the front end from their key)
  and authorises itself against the role matrix (:mod:`orchestrator.access.roles`) before it
  reads or changes anything; a front end never decides who may do what.
- One operation is one unit of work: the service opens the database session (one transaction)
  it needs and commits or rolls back as a whole. Read paths never write.
- It returns frozen result types (``to_json()`` for machine output), never ORM rows: nothing
  from :mod:`orchestrator.store.models` leaves a service.
- Errors are :mod:`orchestrator.errors` subclasses whose message a front end prints as is.

Modules: :mod:`.access` (the access log), :mod:`.audit` (verify a run or an archive),
:mod:`.directory` (people, vendors, the registry bootstrap, the master key), :mod:`.gate`
(explain), :mod:`.metrics`, :mod:`.notices`, :mod:`.public` (the object's public check),
:mod:`.records` (view, sign, assemble, close, findings, archive export), :mod:`.rectify`
(orders, early application, re-check), :mod:`.runs` (start and resume checks, create,
execute, status, summary, kill), :mod:`.schedule` (resume later, jobs, unschedule).

The front ends that call them: :mod:`orchestrator.interfaces` (CLI, API, pages) and
:mod:`orchestrator.demo`; nothing here imports either (``tests/test_layers.py``).
"""

from __future__ import annotations
