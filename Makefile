# The two commands a newcomer needs: `make up` and `make test`. Everything else is a convenience.
SHELL := /bin/bash
.DEFAULT_GOAL := help

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

test:  ## run every test against the real RabbitMQ and PostgreSQL (sets them up when missing)
	@deploy/local/test.sh

.PHONY: help test
