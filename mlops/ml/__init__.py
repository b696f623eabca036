"""The ML service (port 5001): set a model, train it, evaluate it, serve predictions."""
