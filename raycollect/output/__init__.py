"""The output side: a run's output as it holds it (open.py: the lock, the writer, the journal's
path, the record path), where an output lives (store.py: a directory or an object store),
writing it (writer.py: three writers, one `Writer` interface; lock.py: one writer per output),
a frame's files (files.py) and shards (shards.py), reading it back (manifest.py), the contact
sheet (sheet.py), rc.read (dataset.py), the exports (export.py, coco.py, bop.py) and
rebuilding a damaged journal (repair.py)."""
