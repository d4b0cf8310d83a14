"""What an empty grpc.aio Generate handler costs the event-loop thread per call at 64 clients on
one channel, by variant: bytes or a parsed request, metadata read and trailers set, and a result
awaited that another thread (or the loop itself, next turn or 1 ms later) hands back once per
batch; on asyncio's loop or uvloop (variant names containing ``uv``).

    python -m scripts.handoff_floor run typed+meta typed+meta+future uv+typed+meta uv+typed+meta+future

Variant words: ``typed`` (the request parsed by gRPC), ``meta`` (invocation metadata read, time
remaining asked, a trailer set), ``future`` (the answer awaited; resolved by a worker thread per
batch, or ``future-local`` on the next loop turn, ``future-later`` 1 ms later), ``burn`` (the
worker spends 250 us of GIL-free CPU per call of its batch), ``uv`` (uvloop).
"""
import asyncio
import os
import subprocess
import sys
import time
TICK = os.sysconf("SC_CLK_TCK")

def serve(port: int, variant: str) -> None:
    import grpc
    from latentforge.v1 import generation_pb2 as pb
    from services.rpc.handlers import add_handlers
    from concurrent.futures import ThreadPoolExecutor
    desc = pb.DESCRIPTOR.services_by_name["GenerationService"]
    pool = ThreadPoolExecutor(2)
    loop_holder = {}
    pending = []
    answer = pb.GenerateResponse(model="m", version=1).SerializeToString()
    import numpy as np
    A = np.random.rand(64, 64).astype(np.float32)
    def worker_batch(items):
        if "burn" in variant:
            t_end = time.perf_counter() + 0.00025 * len(items)
            while time.perf_counter() < t_end:
                A @ A
        else:
            time.sleep(0.0002)
        loop = loop_holder["loop"]
        loop.call_soon_threadsafe(resolve, items)
    def resolve(items):
        for f in items:
            if not f.done(): f.set_result(answer)
    scheduled = [False]
    def dispatch():
        scheduled[0] = False
        items = pending[:]; pending.clear()
        if "local" in variant:
            loop_holder["loop"].call_soon(resolve, items)
        elif "later" in variant:
            loop_holder["loop"].call_later(0.001, resolve, items)
        else:
            pool.submit(worker_batch, items)
    async def handler(request, context):
        if "meta" in variant:
            context.invocation_metadata()
            context.time_remaining()
        if "future" in variant:
            loop = loop_holder["loop"]
            f = loop.create_future(); pending.append(f)
            if not scheduled[0]:
                scheduled[0] = True; loop.call_soon(dispatch)
            r = await f
        else:
            r = answer
        if "meta" in variant:
            context.set_trailing_metadata((("x-request-id", "abcdef0123456789"),))
        return r
    async def main():
        loop_holder["loop"] = asyncio.get_running_loop()
        server = grpc.aio.server()
        if "typed" in variant:
            handlers = {"Generate": grpc.unary_unary_rpc_method_handler(handler, request_deserializer=pb.GenerateRequest.FromString, response_serializer=None)}
        else:
            handlers = {"Generate": grpc.unary_unary_rpc_method_handler(handler)}
        add_handlers(server, desc, handlers)
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        await server.wait_for_termination()
    if "uv" in variant:
        import uvloop
        uvloop.run(main())
    else:
        asyncio.run(main())

def cpu(pid: int) -> tuple[float, float]:
    main = total = 0.0
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        s = (int(fields[11]) + int(fields[12])) / TICK
        total += s
        if int(tid) == pid: main = s
    return main, total

if sys.argv[1] == "serve":
    serve(int(sys.argv[2]), sys.argv[3])
else:
    from scripts.bench_serving import _free_port
    from tools.loadgen import LoadSpec, run_load
    for variant in sys.argv[2:]:
        port = _free_port()
        p = subprocess.Popen([sys.executable, "-m", "scripts.handoff_floor", "serve", str(port), variant])
        time.sleep(2)
        spec = LoadSpec(target=f"127.0.0.1:{port}", model="mnist-dcgan", concurrency=64, duration_s=2, fmt="raw")
        asyncio.run(run_load(spec))
        m0, t0 = cpu(p.pid)
        r = asyncio.run(run_load(LoadSpec(target=f"127.0.0.1:{port}", model="mnist-dcgan", concurrency=64, duration_s=6, fmt="raw", warmup_s=0)))
        m1, t1 = cpu(p.pid)
        p.kill()
        n = r.requests
        print(f"{variant:20s} req/s {n/6:7.0f}  loop us/call {(m1-m0)/n*1e6:6.1f}  total us/call {(t1-t0)/n*1e6:6.1f}", flush=True)
