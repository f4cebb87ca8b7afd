"""Dynamic routes as data (routing.md): a version's elements checked as a whole graph
(`validate.py`), compiled once into the walkable form the pipeline runs (`graph.py`), with the
conditions (`conditions.py`) and the deterministic percentage split (`split.py`). Pure: no I/O."""
