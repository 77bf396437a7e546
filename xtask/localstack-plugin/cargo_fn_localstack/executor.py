"""The executor itself; see the package doc."""

from localstack.services.lambda_.invocation.runtime_executor import (
    LambdaRuntimeException,
    RuntimeExecutor,
)

NO_CODE = "cargo-fn's LocalStack double runs no function code (control plane only)"


class NoopRuntimeExecutor(RuntimeExecutor):
    def start(self, env_vars):
        raise LambdaRuntimeException(NO_CODE)

    def stop(self):
        pass

    def get_address(self):
        raise LambdaRuntimeException(NO_CODE)

    def get_endpoint_from_executor(self):
        raise LambdaRuntimeException(NO_CODE)

    def get_runtime_endpoint(self):
        raise LambdaRuntimeException(NO_CODE)

    def invoke(self, payload):
        raise LambdaRuntimeException(NO_CODE)

    def get_logs(self):
        return ""

    @classmethod
    def prepare_version(cls, function_version):
        # Nothing to prepare: this is what lets the version become Active.
        pass

    @classmethod
    def cleanup_version(cls, function_version):
        pass
