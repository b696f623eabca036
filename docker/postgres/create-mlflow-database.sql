-- Run once by the postgres image on a fresh volume, after it created POSTGRES_DB ("dataset").
-- The MLflow backend store gets its own database: its schema and migrations stay apart from ours.
CREATE DATABASE mlflow;
