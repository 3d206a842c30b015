"""The LLM proxy's parts: providers and prices, retries and breakers, limits, the ledger."""
