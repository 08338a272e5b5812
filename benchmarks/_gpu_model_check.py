import torch, time
from superlinear.adapters import TorchModel, default_model_dir
from superlinear.core import SamplingParams
import random
cpu = TorchModel.from_dir(default_model_dir(), device="cpu", dtype="float32")
gpu = TorchModel.from_dir(default_model_dir(), device="cuda", dtype="bfloat16", chunk_size=1024)
ids = [random.Random(0).randrange(5, 1024) for _ in range(3000)]
sc, sg = cpu.new_state(8192), gpu.new_state(8192)
cpu.append(sc, ids); gpu.append(sg, ids)
a, b = sc.logits.float(), sg.logits.float().cpu()
print("prefill logits rel err", ((a-b).norm()/a.norm()).item())
p = SamplingParams(temperature=0)
agree = 0
for i in range(32):
    ta = cpu.sample(sc, p, random.Random(1)); tb = gpu.sample(sg, p, random.Random(1))
    agree += ta == tb
    cpu.append(sc, [ta]); gpu.append(sg, [ta])
    a, b = sc.logits.float(), sg.logits.float().cpu()
print("decode steps: greedy agreement", agree, "/ 32; last rel err", ((a-b).norm()/a.norm()).item())
