#!/usr/bin/python3
"""A client that no C++ of ours wrote: Python stubs generated from proto/srlm/v1/coordinator.proto
with grpc_tools call the real srlm-coordinator on loopback. GetStatus without a token and with a
wrong one is UNAUTHENTICATED; with the token the coordinator generated (mode 0600) it answers. The
standard health service answers without a token, and server reflection lists the service.

usage: coordinator_python_client_test.py SOURCE_DIR COORDINATOR_BINARY   (run with Debian's python3)
"""
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time

import grpc
from grpc_tools import protoc


def main():
    source_dir, binary = sys.argv[1], sys.argv[2]
    work = tempfile.mkdtemp(prefix="srlm_pyclient_")
    gen = os.path.join(work, "gen")
    os.makedirs(gen)
    rc = protoc.main(["protoc", "-I" + os.path.join(source_dir, "proto"), "--python_out=" + gen,
                      "--grpc_python_out=" + gen,
                      os.path.join(source_dir, "proto/srlm/v1/coordinator.proto")])
    assert rc == 0, "protoc failed"
    sys.path.insert(0, gen)
    from srlm.v1 import coordinator_pb2, coordinator_pb2_grpc  # noqa: E402

    run_dir = os.path.join(work, "run")
    port_file = os.path.join(work, "port")
    env = dict(os.environ)
    env.pop("SRLM_TOKEN", None)
    log = open(os.path.join(work, "coordinator.log"), "w")
    config = os.path.join(work, "run.yaml")
    ift = os.path.join(work, "ift.jsonl")  # the coordinator keeps its prompts out of the pool
    with open(ift, "w") as f:
        f.write('{"prompt": "Add: 1 + 2", "response": "3"}\n')
    with open(config, "w") as f:
        f.write("model:\n  path: /models/m0\ndata:\n  ift: %s\n" % ift)
    proc = subprocess.Popen([binary, "--run-dir", run_dir, "--config", config, "--listen", "127.0.0.1:0",
                             "--port-file", port_file], stdout=log, stderr=log, env=env)
    try:
        deadline = time.time() + 15
        while not (os.path.exists(port_file) and open(port_file).read().strip()):
            assert proc.poll() is None, "coordinator exited early"
            assert time.time() < deadline, "no port file"
            time.sleep(0.02)
        port = int(open(port_file).read())
        token_path = os.path.join(run_dir, "token")
        mode = stat.S_IMODE(os.stat(token_path).st_mode)
        assert mode == 0o600, "token file mode %o" % mode
        token = open(token_path).read().strip()
        assert len(token) >= 32

        channel = grpc.insecure_channel("127.0.0.1:%d" % port)
        stub = coordinator_pb2_grpc.CoordinatorStub(channel)
        for metadata in ([], [("authorization", "Bearer wrong")], [("authorization", token)]):
            try:
                stub.GetStatus(coordinator_pb2.GetStatusRequest(), metadata=metadata, timeout=10)
                raise AssertionError("GetStatus with metadata %r was answered" % (metadata,))
            except grpc.RpcError as error:
                assert error.code() == grpc.StatusCode.UNAUTHENTICATED, error
        status = stub.GetStatus(coordinator_pb2.GetStatusRequest(),
                                metadata=[("authorization", "Bearer " + token)], timeout=10)
        assert status.iteration == 0, status
        assert status.phase == coordinator_pb2.PHASE_SFT, status
        assert status.run_id.startswith("run-"), status
        assert status.total_iterations == 2, status  # the default run.iterations
        # An unauthenticated call changed nothing: no worker registered.
        assert len(status.workers) == 0

        # Standard health service, no token: HealthCheckResponse{status: SERVING} is b"\x08\x01".
        check = channel.unary_unary("/grpc.health.v1.Health/Check",
                                    request_serializer=lambda b: b, response_deserializer=lambda b: b)
        assert check(b"", timeout=10) == b"\x08\x01"
        service_request = b"\x0a" + bytes([len("srlm.v1.Coordinator")]) + b"srlm.v1.Coordinator"
        assert check(service_request, timeout=10) == b"\x08\x01"
        # Server reflection: ServerReflectionRequest{list_services: ""} (field 7).
        reflect = channel.stream_stream("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
                                        request_serializer=lambda b: b, response_deserializer=lambda b: b)
        replies = list(reflect(iter([b"\x3a\x00"]), timeout=10))
        assert any(b"srlm.v1.Coordinator" in r for r in replies), replies
        print("python client: unauthenticated refused, GetStatus OK (iteration %d, %s), health SERVING, "
              "reflection lists srlm.v1.Coordinator" % (status.iteration, coordinator_pb2.Phase.Name(status.phase)))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
    assert proc.returncode == 0, "coordinator exit status %d" % proc.returncode
    shutil.rmtree(work)  # kept when the test fails, for its coordinator.log


if __name__ == "__main__":
    main()
