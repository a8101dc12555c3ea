import asyncio, sys, time
t0 = time.perf_counter()
import modelwire
URL = open('/tmp/a8cw/url').read()
async def main():
    t1 = time.perf_counter()
    c = modelwire.AsyncClient(api_keys={"openai": "x"}, base_urls={"openai": URL})
    t2 = time.perf_counter()
    await c.complete("openai/gpt-4o-mini", "hi")
    t3 = time.perf_counter()
    await c.aclose()
    print(f"import {1e3*(t1-t0):.1f} construct {1e3*(t2-t1):.1f} first {1e3*(t3-t2):.1f} total {1e3*(t3-t0):.1f}", file=sys.stderr)
asyncio.run(main())
