"""Run in KServe's own venv (its SDK pins cloudevents<2, which the tests' venv cannot have):
ask a server over gRPC with the KServe SDK's InferenceGRPCClient and print what it got.

    python kserve_grpc_client.py HOST:PORT MODEL ROWS_JSON
"""

from __future__ import annotations

import asyncio
import json
import sys

import numpy as np
from kserve import InferenceGRPCClient, InferInput, InferRequest


async def main(address: str, model: str, rows: list[list[float]]) -> dict[str, object]:
    client = InferenceGRPCClient(url=address, retries=0)
    try:
        data = np.array(rows, dtype=np.float64)
        tensor = InferInput(name="input-0", shape=list(data.shape), datatype="FP64")
        tensor.set_data_from_numpy(data, binary_data=True)
        request = InferRequest(model_name=model, infer_inputs=[tensor], request_id="kserve-1")
        response = await client.infer(request)
        output = response.outputs[0]
        return {
            "live": await client.is_server_live(),
            "ready": await client.is_server_ready(),
            "model_ready": await client.is_model_ready(model),
            "id": response.id,
            "model": response.model_name,
            "output": output.name,
            "data": output.as_numpy().reshape(-1).tolist(),
        }
    finally:
        await client.close()


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1], sys.argv[2], json.loads(sys.argv[3])))))
