# The project's virtual environment lives in .venv; every target creates or reuses it.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The Lambda's wheels, downloaded with the venv so that `make package` runs offline (infra/package.py).
WHEELS := $(VENV)/wheelhouse/.complete

.PHONY: dev test check bench clean package check-deploy check-tables deploy deploy-network deploy-service deploy-fleet destroy destroy-fleet destroy-service destroy-network

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $(STAMP)

$(WHEELS): requirements.txt $(STAMP)
	$(PY) -m infra.package wheels
	touch $(WHEELS)

# ARGS: options for the stack, e.g. make dev ARGS="--port 0 --fleet-size 1" ($(PY) -m devstack --help).
# exec: the stack's parent is make itself, so killing make (even with SIGKILL) stops the stack.
ARGS ?=
dev: $(STAMP)
	exec $(PY) -m devstack --stop-with-parent $(ARGS)

test: $(STAMP) $(WHEELS)
	$(PY) -m pytest -n 2 -q

# Lint, format, strict types (chalicelib/, app.py and cli/, see pyproject.toml) and the
# complexity bound. Every step runs, so one failure does not hide the others.
CHECKS := "$(VENV)/bin/ruff check ." "$(VENV)/bin/ruff format --check ." "$(VENV)/bin/mypy" "$(PY) -m tools.complexity"
check: $(STAMP)
	@failed=0; for step in $(CHECKS); do echo "+ $$step"; $$step || failed=1; done; exit $$failed

bench: $(STAMP)
	$(PY) -m bench

clean:
	rm -rf $(VENV) .dev .pytest_cache out

# -- AWS: one set of stacks per stage, network -> service -> fleet ------------
# make package STAGE=prod                         (offline once .venv exists: out/prod/sam.json + deployment.zip)
# make deploy STAGE=prod S3_BUCKET=my-artifacts FLEET_PARAMS="KuboVersion=v... KuboSha512=..." [ALARM_EMAIL=...] [SERVICE_PARAMS="Key=Value ..."]
# make destroy STAGE=dev
STAGE ?= dev
REGION ?= $(or $(AWS_REGION),$(AWS_DEFAULT_REGION),us-east-1)
OUT := out/$(STAGE)
NETWORK_STACK ?= pinning-$(STAGE)-network
SERVICE_STACK ?= pinning-$(STAGE)-service
FLEET_STACK ?= pinning-$(STAGE)-fleet
S3_BUCKET ?=
ALARM_EMAIL ?=
SERVICE_PARAMS ?=
NETWORK_PARAMS ?=
FLEET_PARAMS ?=
AWS := $(VENV)/bin/aws --region $(REGION)
DEPLOY_STAMP := $(VENV)/.deploy-installed
# Templates over 51,200 bytes must go through S3.
CFN_DEPLOY := $(AWS) cloudformation deploy --no-fail-on-empty-changeset --capabilities CAPABILITY_IAM CAPABILITY_AUTO_EXPAND \
	$(if $(S3_BUCKET),--s3-bucket $(S3_BUCKET) --s3-prefix pinning-$(STAGE))

package: $(STAMP) $(WHEELS)
	rm -rf $(OUT)
	AWS_DEFAULT_REGION=$(REGION) $(PY) -m infra.package $(STAGE) $(OUT)

$(DEPLOY_STAMP): requirements-deploy.txt $(STAMP)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-deploy.txt
	touch $(DEPLOY_STAMP)

# Refuses before the first stack is touched when a stack would lack a parameter it needs, or when
# (with AWS credentials) the stage has tables of another layout than the code's.
check-deploy: $(STAMP)
	$(PY) -m infra.deploy_check --s3-bucket "$(S3_BUCKET)" \
		--network "Stage=$(STAGE) $(NETWORK_PARAMS)" --fleet "Stage=$(STAGE) $(FLEET_PARAMS)" \
		--stage "$(STAGE)" --region "$(REGION)"

# The service stack owns the tables: an upgrade with deploy-service alone checks them too
# (deploy has checked them already and says so with TABLES_CHECKED=1).
check-tables: $(STAMP)
	$(PY) -m infra.deploy_check --tables-only --stage "$(STAGE)" --region "$(REGION)"

# One after the other, whatever -j says: each stack imports the previous one's exports.
deploy: check-deploy
	$(MAKE) deploy-network
	$(MAKE) deploy-service TABLES_CHECKED=1
	$(MAKE) deploy-fleet

deploy-network: $(DEPLOY_STAMP)
	$(CFN_DEPLOY) --template-file infra/network.yaml --stack-name $(NETWORK_STACK) --parameter-overrides Stage=$(STAGE) $(NETWORK_PARAMS)

deploy-service: $(if $(TABLES_CHECKED),,check-tables) package $(DEPLOY_STAMP)
	test -n "$(S3_BUCKET)" || { echo "S3_BUCKET=<bucket in $(REGION)> is required: the code package is uploaded there" >&2; exit 1; }
	$(AWS) cloudformation package --use-json --template-file $(OUT)/sam.json --s3-bucket $(S3_BUCKET) --s3-prefix $(SERVICE_STACK) --output-template-file $(OUT)/packaged.json
	$(CFN_DEPLOY) --template-file $(OUT)/packaged.json --stack-name $(SERVICE_STACK) \
		$(if $(ALARM_EMAIL)$(SERVICE_PARAMS),--parameter-overrides $(if $(ALARM_EMAIL),AlarmEmail=$(ALARM_EMAIL)) $(SERVICE_PARAMS))
	$(AWS) cloudformation describe-stacks --stack-name $(SERVICE_STACK) --query "Stacks[0].Outputs" --output table

deploy-fleet: $(DEPLOY_STAMP)
	$(CFN_DEPLOY) --template-file infra/fleet.yaml --stack-name $(FLEET_STACK) --parameter-overrides Stage=$(STAGE) $(FLEET_PARAMS)

# Reverse order: each stack's exports are imported by the next one.
destroy: destroy-fleet destroy-service destroy-network

destroy-fleet destroy-service destroy-network: destroy-%: $(DEPLOY_STAMP)
	$(AWS) cloudformation delete-stack --stack-name $($(shell echo $* | tr a-z A-Z)_STACK)
	$(AWS) cloudformation wait stack-delete-complete --stack-name $($(shell echo $* | tr a-z A-Z)_STACK)
