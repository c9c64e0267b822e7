.PHONY: tools
tools: ## Install the real tools tests need (Prometheus, promtool, helm, kubernetes-validate, ...)
	.ci/install-tools
