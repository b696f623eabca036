#!/usr/bin/env bash
# The walkthrough with curl, for people without Postman: every request of the Postman collection
# (postman/), in the walkthrough's order, each answer printed and checked. It stops with a non-zero
# exit status at the first answer that is not a 2xx or not what the walkthrough says.
#
#   scripts/walkthrough.sh                 # services on 127.0.0.1:5001-5004 (`make up`)
#   TRACKING_URL=http://host:5002 ... scripts/walkthrough.sh
#
# Environment: SIMULATOR_URL, ML_URL, TRACKING_URL, MONITORING_URL (base URLs), EXPERIMENT_NAME
# (default wine_test_<epoch seconds>: new on every run, since the run deletes its experiment at the
# end and MLflow keeps deleted names), MLOPS_API_TOKEN (sent as a bearer token if set), PYTHON.
# Needs curl and python3 (it reads the JSON answers; nothing else to install).
set -euo pipefail

SIMULATOR_URL=${SIMULATOR_URL:-http://127.0.0.1:5004}
ML_URL=${ML_URL:-http://127.0.0.1:5001}
TRACKING_URL=${TRACKING_URL:-http://127.0.0.1:5002}
MONITORING_URL=${MONITORING_URL:-http://127.0.0.1:5003}
EXPERIMENT_NAME=${EXPERIMENT_NAME:-wine_test_$(date +%s)}
PYTHON=${PYTHON:-python3}
# The optimization and the first Evidently run take seconds; a stuck service should not hang us.
MAX_SECONDS=${MAX_SECONDS:-600}

ANSWER=$(mktemp)
trap 'rm -f "$ANSWER"' EXIT
STEP=0
export EXPERIMENT_NAME

fail() {
    printf '\nFAILED at step %d: %s\n' "$STEP" "$*" >&2
    exit 1
}

# call TITLE METHOD URL [JSON_BODY]: send one request, print it and its answer; fail unless 2xx.
call() {
    local title=$1 method=$2 url=$3 body=${4:-} status
    local args=(--silent --show-error --request "$method" --output "$ANSWER" --write-out '%{http_code}'
                --max-time "$MAX_SECONDS")
    if [[ -n $body ]]; then
        args+=(--header 'Content-Type: application/json' --data-binary "$body")
    fi
    if [[ -n ${MLOPS_API_TOKEN:-} ]]; then
        args+=(--header "Authorization: Bearer $MLOPS_API_TOKEN")
    fi
    STEP=$((STEP + 1))
    printf '\n[%02d] %s\n==> %s %s\n' "$STEP" "$title" "$method" "$url"
    status=$(curl "${args[@]}" "$url") || fail "could not reach $url (is the service running?)"
    printf '<== %s %s\n' "$status" "$(show_answer)"
    [[ $status == 2* ]] || fail "expected a 2xx answer, got $status"
}

# show_answer: the last answer as one line, shortened when it is long (Evidently's reports).
show_answer() {
    "$PYTHON" - "$ANSWER" <<'PY'
import json, sys
text = open(sys.argv[1], encoding="utf-8").read()
try:
    answer = json.loads(text)
except ValueError:
    sys.exit(print(text[:300]))
line = json.dumps(answer, ensure_ascii=False)
if len(line) > 1500 and isinstance(answer, dict):
    data = answer.get("data")
    shape = list(data)[:8] if isinstance(data, dict) else f"{len(data)} items" if isinstance(data, list) else data
    line = json.dumps({"message": answer.get("message"), "data": f"({len(line)} bytes) keys {shape}"})
print(line)
PY
}

# Evaluates the Python expression argv[3] on the last answer `a` (with `env`, the environment):
# mode "print" prints its value (strings unquoted), mode "check" exits 1 unless it is true.
read -r -d '' EVALUATE <<'PY' || true
import json, math, os, re, sys
a, env = json.load(open(sys.argv[1], encoding="utf-8")), os.environ
try:
    value = eval(f"({sys.argv[3]}\n)")  # parenthesized: an expression may span lines
except Exception as error:
    sys.exit(f"    ({type(error).__name__}: {error})")
if sys.argv[2] == "check":
    sys.exit(0 if value else 1)
print(value if isinstance(value, str) else json.dumps(value))
PY

# field EXPR: print EXPR evaluated on the last answer `a`.
field() {
    "$PYTHON" -c "$EVALUATE" "$ANSWER" print "$1" || fail "could not read $1 from the answer"
}

# expect WHAT EXPR: fail unless EXPR holds for the last answer `a`.
expect() {
    "$PYTHON" -c "$EVALUATE" "$ANSWER" check "$2" || fail "expected $1: $2"
    printf '    ok  %s\n' "$1"
}

expect_message() {
    EXPECTED=$1 expect "the message \"$1\"" 'a.get("message") == env["EXPECTED"]'
}

# score: the accuracy (0-1) of the last "Score on <set> set: <percent>%" message.
score() {
    field 'round(float(re.fullmatch(r"Score on \w+ set: (\d+\.\d+)%", a["message"]).group(1)) / 100, 6)'
}

RUN_SUFFIX=" Grid_Search_Opt and CV_Performance"
export RUN_SUFFIX

echo "== Are the services up?"
for service in SIMULATOR ML TRACKING MONITORING; do
    url_var="${service}_URL"
    call "${service,,} health" GET "${!url_var}/health"
    expect "status ok" 'a["status"] == "ok"'
done
call "Simulator status" GET "$SIMULATOR_URL/root/simulator"
expect "the simulator names itself (and lists the sets loaded)" 'a["name"] == "simulator" and a["message"] == "Simulator" and "sets" in a'

echo; echo "== Data Loading"
for set_name in training testing; do
    call "Load the $set_name set" POST "$SIMULATOR_URL/root/simulator" "{\"set_name\": \"$set_name\"}"
    expect_message "Load $set_name set"
done

echo; echo "== MLflow Logging"
call "Optimization: grid search + 5-fold CV of three models, logged to MLflow as $EXPERIMENT_NAME" \
    POST "$TRACKING_URL/root/tracking/model_management" '{
    "request_information": "optimization",
    "experiment_name": "'"$EXPERIMENT_NAME"'",
    "experiment_description": "Grid Search Optimization - Cross Validation Performance",
    "experiment_owner": "Ale",
    "models": ["LogisticRegression", "RandomForest", "SVC"],
    "hyperparameters": {
        "LogisticRegression": {"C": [0.1, 1], "solver": ["liblinear"]},
        "RandomForest": {"n_estimators": [1, 3], "max_depth": [null, 3], "min_samples_split": [2, 5]},
        "SVC": {"C": [0.1, 10], "kernel": ["linear", "rbf"], "gamma": ["scale", "auto"]}
    },
    "scoring": "accuracy",
    "cv": 5
}'
expect_message "Experiments retrieved successfully"
expect "an experiment id and one run id per model" \
    'a["data"]["experiment_id"].isdigit() and sorted(a["data"]["run_ids"]) == ["LogisticRegression", "RandomForest", "SVC"]'
EXPERIMENT_ID=$(field 'a["data"]["experiment_id"]')
LR_RUN_ID=$(field 'a["data"]["run_ids"]["LogisticRegression"]')
RF_RUN_ID=$(field 'a["data"]["run_ids"]["RandomForest"]')
SVC_RUN_ID=$(field 'a["data"]["run_ids"]["SVC"]')
export EXPERIMENT_ID LR_RUN_ID RF_RUN_ID SVC_RUN_ID
echo "    experiment $EXPERIMENT_ID; LogisticRegression run $LR_RUN_ID"

echo; echo "== MLflow Data Recovery"
call "All experiments" GET "$TRACKING_URL/root/tracking/experiments"
expect_message "Experiments retrieved successfully"
expect "ours, active, with 3 runs" '{"experiment_id": env["EXPERIMENT_ID"], "name": env["EXPERIMENT_NAME"], "lifecycle_stage": "active", "run_count": 3} in a["data"]'

call "Runs of experiment $EXPERIMENT_ID" GET "$TRACKING_URL/root/tracking/runs?experiment_id=$EXPERIMENT_ID"
expect_message "Experiment Runs Retrieved"
expect "the 3 runs, finished, named and tagged by model" '
    sorted(r["run_id"] for r in a["data"]) == sorted([env["LR_RUN_ID"], env["RF_RUN_ID"], env["SVC_RUN_ID"]])
    and all(r["status"] == "FINISHED" and r["run_name"] == r["tags"]["model_type"] + env["RUN_SUFFIX"]
            and r["tags"]["experiment_type"] == "GridSearch_CrossValidation"
            and re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", r["start_time"]) for r in a["data"])'

call "Experiment: general" POST "$TRACKING_URL/root/tracking/experiments" \
    "{\"experiment_id\": \"$EXPERIMENT_ID\", \"request_information\": \"general\"}"
expect_message "Information Retrieved"
expect "its name, description and owner" '
    a["data"]["experiment_info"]["experiment_name"] == env["EXPERIMENT_NAME"]
    and a["data"]["experiment_info"]["tags"]["owner"] == "Ale"
    and a["data"]["experiment_info"]["tags"]["description"] == "Grid Search Optimization - Cross Validation Performance"'
expect "3 runs, all completed" '
    {k: a["data"]["experiment_runs"][k] for k in ("number_of_runs", "completed_runs", "failed_runs", "active_runs", "stopped_runs")}
    == {"number_of_runs": 3, "completed_runs": 3, "failed_runs": 0, "active_runs": 0, "stopped_runs": 0}'

call "Experiment: best_model by model_accuracy" POST "$TRACKING_URL/root/tracking/experiments" \
    "{\"experiment_id\": \"$EXPERIMENT_ID\", \"request_information\": \"best_model\", \"filter\": [\"model_accuracy\"]}"
expect_message "Best model and run retrieved successfully."
expect "a run of ours with its name, model and model_accuracy" '
    a["data"]["run_id"] in (env["LR_RUN_ID"], env["RF_RUN_ID"], env["SVC_RUN_ID"])
    and a["data"]["run_name"] == a["data"]["model"] + env["RUN_SUFFIX"]
    and 0 <= a["data"]["metrics"]["model_accuracy"] <= 1'
expect "as in the walkthrough: LogisticRegression, accuracy 98/106" '
    a["data"]["run_id"] == env["LR_RUN_ID"] and math.isclose(a["data"]["metrics"]["model_accuracy"], 98 / 106)'
BEST_RUN_ID=$(field 'a["data"]["run_id"]')
BEST_MODEL=$(field 'a["data"]["model"]')
BEST_ACCURACY=$(field 'a["data"]["metrics"]["model_accuracy"]')
export BEST_RUN_ID BEST_MODEL BEST_ACCURACY

call "Experiment: statistics of all metrics" POST "$TRACKING_URL/root/tracking/experiments" \
    "{\"experiment_id\": \"$EXPERIMENT_ID\", \"request_information\": \"statistics\", \"filter\": [\"all\"]}"
expect_message "Statistics Retrieved"
expect "8 statistics of duration, accuracy, f1_score, precision, recall" '
    sorted(a["data"]) == ["accuracy", "duration", "f1_score", "precision", "recall"]
    and all(sorted(s) == ["iqr", "max", "mean", "median", "min", "mode", "std_dev", "variance"]
            and s["min"] <= s["median"] <= s["max"] for s in a["data"].values())'
expect "the best accuracy is the best model's" 'math.isclose(a["data"]["accuracy"]["max"], float(env["BEST_ACCURACY"]))'

run_query() {
    call "Run $LR_RUN_ID (LogisticRegression): $1 $2" POST "$TRACKING_URL/root/tracking/runs" \
        "{\"experiment_id\": \"$EXPERIMENT_ID\", \"run_id\": \"$LR_RUN_ID\", \"request_information\": \"$1\", \"type\": \"$2\"}"
    expect_message "Parameters Retrieved"
}
run_query parameters data
expect "106 samples, 13 features, 3 classes" 'a["data"] == {"classes": "3", "features": "13", "samples": "106"}'
run_query parameters grid_search
expect "the grid as sent" 'a["data"] == {"C": "[0.1, 1]", "cv_folds": "5", "scoring": "accuracy", "solver": str(["liblinear"])}'
run_query parameters model
expect "the best hyperparameters, as in the walkthrough" 'a["data"] == {"C": "0.1", "solver": "liblinear"}'
run_query metrics system
expect "cpu_usage and execution_time" 'sorted(a["data"]) == ["cpu_usage", "execution_time"] and a["data"]["execution_time"] > 0'
run_query metrics model
expect "accuracy, f1_score, precision, recall; accuracy 98/106" '
    sorted(a["data"]) == ["accuracy", "f1_score", "precision", "recall"] and math.isclose(a["data"]["accuracy"], 98 / 106)'

echo; echo "== Model Deployment and Usage"
call "Deploy the best run ($BEST_MODEL) to the ML service (setting)" POST "$TRACKING_URL/root/tracking/model_management" \
    "{\"request_information\": \"setting\", \"run_id\": \"$BEST_RUN_ID\"}"
expect_message "Model successfully uploaded"
call "ML model status" GET "$ML_URL/root/ml"
expect "the best run's model is deployed, untrained" '
    a["message"] == "ML model" and a["model"]["model_name"] == env["BEST_MODEL"]
    and a["model"]["hyperparameters"] == {"C": 0.1, "solver": "liblinear"} and a["model"]["trained_at"] is None'

call "Set a model directly (set_model)" POST "$ML_URL/root/ml/set_model" '{
    "model_name": "RandomForest",
    "hyperparameters": {"n_estimators": 100, "max_depth": 10, "min_samples_split": 2, "min_samples_leaf": 1}
}'
expect_message "Model successfully uploaded"

call "Train the model" POST "$ML_URL/root/ml" '{"dataset": "training"}'
expect "Score on training set: <accuracy>%" 're.fullmatch(r"Score on training set: \d{1,3}\.\d\d%", a["message"])'
call "ML model status" GET "$ML_URL/root/ml"
expect "the RandomForest is trained" 'a["model"]["model_name"] == "RandomForest" and a["model"]["trained_at"] is not None'

call "Evaluate on the testing set" POST "$ML_URL/root/ml" '{"dataset": "testing"}'
expect "Score on testing set: <accuracy>%" 're.fullmatch(r"Score on testing set: \d{1,3}\.\d\d%", a["message"])'
TESTING_ACCURACY=$(score)
export TESTING_ACCURACY

echo; echo "== ML Model in a Production Environment"
call "Load the (fouled) production set" POST "$SIMULATOR_URL/root/simulator" '{"set_name": "production"}'
expect_message "Load production set"
call "Evaluate on the production set" POST "$ML_URL/root/ml" '{"dataset": "production"}'
expect "Score on production set: <accuracy>%" 're.fullmatch(r"Score on production set: \d{1,3}\.\d\d%", a["message"])'
PRODUCTION_ACCURACY=$(score)
export PRODUCTION_ACCURACY
expect "production scores below testing ($PRODUCTION_ACCURACY < $TESTING_ACCURACY)" \
    'float(env["PRODUCTION_ACCURACY"]) < float(env["TESTING_ACCURACY"])'

echo; echo "== ML Model Monitoring"
call "Monitoring status" GET "$MONITORING_URL/root/monitoring"
expect "monitoring names itself" 'a == {"name": "monitoring", "message": "Monitoring"}'
call "Monitoring: report" POST "$MONITORING_URL/root/monitoring" '{"metric": "report"}'
expect "Evidently's metrics of production (current) against testing (reference)" '
    len(a["data"]["metrics"]) > 0
    and a["datasets"]["reference"]["set"] == "testing" and a["datasets"]["current"]["set"] == "production"'
expect "the classification accuracies are those the ML service reported" '
    math.isclose(next(m["result"]["current"]["accuracy"] for m in a["data"]["metrics"]
                      if m["metric"] == "ClassificationQualityMetric"), float(env["PRODUCTION_ACCURACY"]), abs_tol=5e-5)'
call "Monitoring: tests" POST "$MONITORING_URL/root/monitoring" '{"metric": "tests"}'
expect "the five test presets ran" '
    a["tests"] == ["data_drift", "data_quality", "data_stability", "no_target_performance", "multi_class_classification"]
    and len(a["data"]["tests"]) == a["data"]["summary"]["total_tests"] > 0'
call "Monitoring: summary" POST "$MONITORING_URL/root/monitoring" '{
    "metric": "summary",
    "tests": {
        "data_drift": true,
        "data_quality": true,
        "data_stability": true,
        "no_target_performance": true,
        "multi_class_classification": true
    }
}'
expect "counts that add up" '
    a["data"]["total_tests"] == sum(a["data"]["by_status"].values()) == a["data"]["success_tests"] + a["data"]["failed_tests"]'
expect "the fouled production data fails tests: re-training is advised" \
    'a["data"]["all_passed"] is False and a["data"]["failed_tests"] > 0'
echo "    $(field 'a["message"]')"
# Beside the summary: the re-training verdict, every check with its statistic and effect size.
call "Monitoring: verdict" POST "$MONITORING_URL/root/monitoring" '{"metric": "verdict"}'
expect "every check listed, each fired exactly when its p-value is within its threshold" '
    len(a["data"]["reasons"]) == 16 and all(
        r["fired"] == ((r["adjusted_p_value"] if r["check"] == "distribution shift" else r["p_value"]) <= r["threshold"])
        for r in a["data"]["reasons"])'
expect "the fouled production data: re-training advised, for its missing values" '
    a["data"]["retraining_advised"] is True
    and "missing values" in [r["check"] for r in a["data"]["reasons"] if r["fired"]]'
echo "    $(field 'a["message"]')"

echo; echo "== Deleting MLflow Experiments and Runs"
# The walkthrough's order: the experiment, then one of its runs (deleting the experiment
# deleted its runs too, so the run's delete has nothing left to do and answers 200).
call "Delete the experiment" DELETE "$TRACKING_URL/root/tracking/experiments?experiment_id=$EXPERIMENT_ID"
expect_message "Experiment deleted successfully"
call "Experiments after the delete" GET "$TRACKING_URL/root/tracking/experiments"
expect "ours is no longer listed" 'env["EXPERIMENT_ID"] not in [e["experiment_id"] for e in a["data"]]'
call "Delete the LogisticRegression run" DELETE "$TRACKING_URL/root/tracking/runs?experiment_id=$EXPERIMENT_ID&run_id=$LR_RUN_ID"
expect_message "Run deleted successfully"

printf '\nThe walkthrough passed: %d requests, every answer as expected.\n' "$STEP"
