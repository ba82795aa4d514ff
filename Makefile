# The two commands a newcomer needs: `make up` and `make test`. Everything else is a convenience.
SHELL := /bin/bash
.DEFAULT_GOAL := help

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

test:  ## run every test against the real RabbitMQ and PostgreSQL (sets them up when missing)
	@deploy/local/test.sh

lint:  ## ruff, and mypy --strict on shared/ and services/ (also the first step of make test)
	@deploy/local/lint.sh

up:  ## start the whole stack in the background (Docker when an engine answers, else local; STACK=docker|local; REPLICAS=2; BROKER_NODES=3)
	@SHOP_REPLICAS=$${REPLICAS:-$${SHOP_REPLICAS:-}} deploy/stack.sh up

restart:  ## replace each service's processes one at a time, none of them unnoticed (S=orders for one; local mode)
	@deploy/stack.sh restart

down:  ## stop what `make up` started (by its recorded pids); the data stays
	@deploy/stack.sh down

status:  ## each service's health, queue depths and consumers, parked messages, outbox backlog, history stream and rebuilds
	@deploy/stack.sh status

rebuild:  ## rebuild a service's read model from the history stream, through its own handlers (S=analytics; local mode)
	@deploy/stack.sh rebuild

logs:  ## follow every log (make logs S=orders for one service)
	@deploy/stack.sh logs

bench:  ## the benchmark of docs/contract.md section 4: figures beside their baselines, as a table, JSON and PNG
	@deploy/local/bench.sh

mail:  ## the mail the development SMTP sink received (N=20 last)
	@deploy/stack.sh mail

faults:  ## the fault suite at full size (2000 orders per fault, 1 then 2 processes per service); table in tests/faults/results.md
	@SHOP_FAULT_ORDERS=$${SHOP_FAULT_ORDERS:-2000} SHOP_FAULT_REPLICAS=$${SHOP_FAULT_REPLICAS:-1,2} SHOP_FAULT_CLUSTER=$${SHOP_FAULT_CLUSTER:-all} \
	  SHOP_FAULT_REPORT=$${SHOP_FAULT_REPORT:-tests/faults/results.md} deploy/local/test.sh tests/faults -p no:cacheprovider

.PHONY: help test lint up down status logs restart rebuild bench mail faults
