"""The champion: which registered version the ML service serves, how it moves (promotion,
rollback, adoption of a model trained through the ML service) and how the registry and the ML
service are kept in step.

Source of truth: MLflow. The champion's history (events on the registered model) is written
first, then the `champion` alias follows it, then the ML service is given the alias's version
(PUT /root/ml/model, which stores the pipeline with its registered version in the dataset DB; every
ML worker swaps to it on its next request). A crash between any two steps is repaired by
`reconcile`, which tracking runs when it starts, every MLOPS_CHAMPION_SYNC_SECONDS, and before
every request that moves the champion: the alias is moved to the latest event's version, and the
ML service is given the alias's version if it serves another one.

The one exception is a model trained through the ML service itself (set_model or setting, then
POST /root/ml {"dataset": "training"}): that is a person's decision made on the ML service, so it
is never overwritten; the next move (retraining, promotion, rollback) first registers it as a new
version and makes it the champion ("adopted"). An untrained model set on the ML service is left
alone too (its training is next).

Moves are serialized by a file lock in the data dir (every tracking worker of one host).

The package: loop.py (the Loop, the ML service's served model, push, the one move primitive) ·
sync.py (reconcile, adoption, the background sync) · moves.py (promotion, rollback, a gate that
kept the champion) · history.py (the champion report, a run's lineage).
"""
