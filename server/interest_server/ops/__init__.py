"""Operations: metrics, logs, tracing, process supervision, the embedded Redis."""
