"""What runs inside a render worker: the RenderWorker actor (worker.py), which jobs share a
batch (batches.py), its leases (leases.py), its browser page (page.py) and what the page
shows (stage.py), the ids of the scene on the page (ids.py), where its frames go (sink.py),
the locked-down Vuer server (server.py), and the capture script the page runs (capture_js/)
with its decoder (capture.py)."""
