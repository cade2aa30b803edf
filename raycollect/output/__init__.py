"""The output side: where an output lives (store.py: a directory or an object store), writing
it (writer.py, one writer per output: lock.py), a frame's files (files.py) and shards
(shards.py), reading it back (manifest.py), the contact sheet (sheet.py), rc.read
(dataset.py), the exports (export.py, coco.py, bop.py) and rebuilding a damaged journal
(repair.py)."""
