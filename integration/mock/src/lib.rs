//! Mock LLM providers.
