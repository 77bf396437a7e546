"""A Lambda runtime executor for LocalStack that needs no Docker.

cargo-fn's deploy tests use LocalStack as a strict Lambda control plane.
Its default runtime executor starts a Docker container per function
version; without Docker a function never becomes Active, and deploy waits
for Active before it publishes. This executor prepares every version at
once (so functions reach Active) and runs no code: an invocation fails with
a clear error. Selected with LAMBDA_RUNTIME_EXECUTOR=cargo-fn-noop.
"""

from localstack.services.lambda_.invocation.plugins import RuntimeExecutorPlugin


class NoopRuntimeExecutorPlugin(RuntimeExecutorPlugin):
    name = "cargo-fn-noop"

    def load(self, *args, **kwargs):
        # Imported here: plux may load the plugin class before LocalStack's
        # Lambda service is set up.
        from cargo_fn_localstack.executor import NoopRuntimeExecutor

        return NoopRuntimeExecutor
