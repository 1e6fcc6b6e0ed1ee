#!/usr/bin/env python3
"""Compare gridcast's CPU forward pass of the shipped U-Net with ONNX Runtime.

One command runs both sides:

1. `cargo run --release --example network_forward` builds the network input from
   storm-1996 analyses, writes input and output tensors as .npy files and times the
   network at each batch size. It runs twice: with `--backend kernel`, the direct
   convolution of gridcast-kernels that CPU forecasts run ("gridcast"), and with
   `--backend candle`, candle's conv2d that training runs ("candle").
2. This script builds the same network as an ONNX graph from
   models/storm-cnn/model.safetensors and runs it with ONNX Runtime's CPU provider
   on the same input. It exits with an error unless every output value is within
   --tolerance of each gridcast backend's, and then times it at the same batch sizes.
3. Steps 1 and 2 repeat for --rounds rounds. The script then prints one Markdown
   table with the median round's grid cells per second, the ratios, and achieved
   GFLOP/s as a share of the peak FLOP/s that peak.c helps estimate (see
   peak_flops).

The graph covers only the convolution network (`network::forward`), not the feature
assembly, the linear head or the tendency update around it, so both sides run the same operations on
the same input tensor.

Usage: python benches/onnx/compare.py [--rounds 3] [--seconds 5] [--batch 1,64]
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from safetensors.numpy import load_file

REPO = Path(__file__).resolve().parents[2]
MODEL_DIR = REPO / "models" / "storm-cnn"
# Tensors that share the weights file with the network's parameters but are not part
# of the network: the climatology and the linear head's coefficients.
NON_NETWORK_TENSORS = ("climatology", "linear")
OPSET = 17


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--batch",
        default="1,64",
        help="comma-separated batch sizes to check and time (default: 1,64)",
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=5.0,
        help="minimum timed seconds per batch size, side and round, after warm-up "
        "(default: 5)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="rounds of gridcast then ONNX Runtime timing; the table shows the median "
        "round (default: 3)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=len(os.sched_getaffinity(0)),
        help="ONNX Runtime intra-op threads (default: the usable cores, as candle uses)",
    )
    parser.add_argument(
        "--tolerance",
        type=float,
        default=1e-4,
        help="maximum allowed absolute difference between the outputs (default: 1e-4)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="directory for tensors, the ONNX model and results.json "
        "(default: a temporary directory, removed at exit)",
    )
    parser.add_argument(
        "--ghz",
        type=float,
        help="core clock in GHz for the peak FLOP/s (default: measured by peak.c, "
        "else `cpu MHz` of /proc/cpuinfo)",
    )
    parser.add_argument(
        "--fma-units",
        type=int,
        help="full-width FMA instructions issued per cycle per core "
        "(default: derived from /proc/cpuinfo, see peak_flops)",
    )
    return parser.parse_args()


def run_gridcast(out_dir, batches, seconds, backend):
    """Run the Rust example with `backend`, which writes the tensors and forward.json
    into out_dir/backend."""
    out_dir = out_dir / backend
    command = [
        "cargo",
        "run",
        "--quiet",
        "--release",
        "--example",
        "network_forward",
        "--",
        "--out",
        str(out_dir),
        "--batch",
        ",".join(str(b) for b in batches),
        "--seconds",
        str(seconds),
        "--backend",
        backend,
    ]
    print("$", " ".join(command), flush=True)
    subprocess.run(command, cwd=REPO, check=True)
    return json.loads((out_dir / "forward.json").read_text())


# Sides of the table: the kernel CPU forecasts run, candle's conv2d, ONNX Runtime.
SIDES = ("gridcast", "candle", "ort")
BACKENDS = {"gridcast": "kernel", "candle": "candle"}


def build_graph(manifest, weights, n_lat, n_lon):
    """Build the ONNX graph of `network::forward` for `[batch, C, n_lat, n_lon]` inputs.

    The graph mirrors models/src/network.rs. It pads the grid to a multiple of
    2^levels by replicating edge cells, then runs the encoder blocks with 2 x 2
    average pooling and the bottleneck. The decoder blocks follow, each after nearest
    2x up-sampling and concatenation (up-sampled first, then the skip). Last come a
    1 x 1 head and the crop back to the input grid.
    """
    arch = manifest["architecture"]
    levels = arch["levels"]
    nodes = []
    initializers = [
        numpy_helper.from_array(np.ascontiguousarray(value), name)
        for name, value in sorted(weights.items())
    ]

    def constant(name, array):
        initializers.append(numpy_helper.from_array(array, name))
        return name

    def conv(x, name, padding):
        kernel = list(weights[f"{name}.weight"].shape[2:])
        out = f"{name}.out"
        nodes.append(
            helper.make_node(
                "Conv",
                [x, f"{name}.weight", f"{name}.bias"],
                [out],
                kernel_shape=kernel,
                pads=[padding] * 4,
                strides=[1, 1],
            )
        )
        return out

    def silu(x):
        sigmoid = f"{x}.sigmoid"
        out = f"{x}.silu"
        nodes.append(helper.make_node("Sigmoid", [x], [sigmoid]))
        nodes.append(helper.make_node("Mul", [x, sigmoid], [out]))
        return out

    def block(x, name):
        x = silu(conv(x, f"{name}.conv1", 1))
        return silu(conv(x, f"{name}.conv2", 1))

    multiple = 1 << levels
    pad_lat = -n_lat % multiple
    pad_lon = -n_lon % multiple
    top, left = pad_lat // 2, pad_lon // 2
    pads = constant(
        "pad.pads",
        np.array(
            [0, 0, top, left, 0, 0, pad_lat - top, pad_lon - left], dtype=np.int64
        ),
    )
    nodes.append(helper.make_node("Pad", ["input", pads], ["padded"], mode="edge"))

    x = "padded"
    skips = []
    for i in range(levels):
        skip = block(x, f"enc{i}")
        pooled = f"enc{i}.pooled"
        nodes.append(
            helper.make_node(
                "AveragePool", [skip], [pooled], kernel_shape=[2, 2], strides=[2, 2]
            )
        )
        skips.append(skip)
        x = pooled
    x = block(x, "mid")
    scales = constant("upsample.scales", np.array([1, 1, 2, 2], dtype=np.float32))
    for i in reversed(range(levels)):
        upsampled = f"dec{i}.upsampled"
        # Exact 2x because the padded grid is a multiple of 2^levels. "asymmetric" with
        # "floor" maps output index j to input index floor(j / 2), as candle does.
        nodes.append(
            helper.make_node(
                "Resize",
                [x, "", scales],
                [upsampled],
                mode="nearest",
                coordinate_transformation_mode="asymmetric",
                nearest_mode="floor",
            )
        )
        concatenated = f"dec{i}.concat"
        nodes.append(
            helper.make_node("Concat", [upsampled, skips[i]], [concatenated], axis=1)
        )
        x = block(concatenated, f"dec{i}")
    head = conv(x, "head", 0)
    starts = constant("crop.starts", np.array([top, left], dtype=np.int64))
    ends = constant("crop.ends", np.array([top + n_lat, left + n_lon], dtype=np.int64))
    axes = constant("crop.axes", np.array([2, 3], dtype=np.int64))
    nodes.append(helper.make_node("Slice", [head, starts, ends, axes], ["output"]))

    graph = helper.make_graph(
        nodes,
        "storm_cnn_unet2",
        [
            helper.make_tensor_value_info(
                "input",
                TensorProto.FLOAT,
                ["batch", arch["input_channels"], n_lat, n_lon],
            )
        ],
        [
            helper.make_tensor_value_info(
                "output",
                TensorProto.FLOAT,
                ["batch", arch["output_channels"], n_lat, n_lon],
            )
        ],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    onnx.checker.check_model(model)
    return model


def conv_flops(manifest, weights, batch, n_lat, n_lon):
    """Count convolution FLOPs of one forward pass, as the Rust example does.

    Each convolution counts 2 * c_in * c_out * k * k * h * w, with h x w its level
    of the padded grid. Bias, SiLU, pooling, up-sampling, padding and concatenation
    are not counted.
    """
    levels = manifest["architecture"]["levels"]
    multiple = 1 << levels
    lat0 = n_lat + (-n_lat % multiple)
    lon0 = n_lon + (-n_lon % multiple)
    flops = 0
    for name, value in weights.items():
        if not name.endswith(".weight"):
            continue
        match = re.match(r"(enc|dec)(\d+)\.", name)
        if name.startswith("mid."):
            level = levels
        elif match:
            level = int(match.group(2))
        else:
            level = 0
        flops += 2 * int(np.prod(value.shape)) * (lat0 >> level) * (lon0 >> level)
    return flops * batch


def read_cpuinfo():
    """Return the first processor's fields of /proc/cpuinfo."""
    text = Path("/proc/cpuinfo").read_text()
    first = text.strip().split("\n\n")[0]
    fields = {}
    for line in first.splitlines():
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    return fields


def measure_peak(out_dir, cores):
    """Compile and run peak.c on `cores` threads and return its JSON output.

    Returns None, after printing why, when compiling or running it fails.
    """
    binary = out_dir / "peak"
    source = Path(__file__).with_name("peak.c")
    compile_command = [
        "cc",
        "-O2",
        "-mavx512f",
        "-pthread",
        str(source),
        "-o",
        str(binary),
    ]
    try:
        subprocess.run(compile_command, check=True)
        measured = subprocess.run(
            [str(binary), str(cores)], check=True, capture_output=True, text=True
        )
    except (OSError, subprocess.CalledProcessError) as err:
        print(
            f"note: clock measurement failed ({err}); using `cpu MHz` of /proc/cpuinfo"
        )
        return None
    return json.loads(measured.stdout)


def peak_flops(out_dir, ghz=None, fma_units=None):
    """Estimate the peak f32 FLOP/s of the usable cores.

    peak = cores * FMA instructions per cycle * f32 lanes * 2 flops * clock.

    Lanes are 16 with AVX-512F, 8 with AVX2 + FMA. AMD family 25 with AVX-512 is
    Zen 4, which has two 256-bit FMA pipes and runs each 512-bit FMA on both, so it
    issues one 512-bit FMA per cycle. Every other CPU is assumed to issue two.
    NOTE: two holds for Zen 5 server parts and most AVX-512 Xeons, not for every
    AVX-512 part, so check the FMA rate that peak.c measures.

    The clock is measured by peak.c under load on all cores, because under a
    hypervisor `cpu MHz` is the nominal clock and the cores may run faster.

    Unless --ghz or --fma-units is given, the peak used is the rate peak.c measures
    for a loop of independent 512-bit FMAs on all cores, and the estimate above is
    only printed: it depends on the FMA count per cycle, which is assumed, and on the
    clock measurement, which failed on some CPUs.
    """
    ghz_given, fma_given = ghz, fma_units
    fields = read_cpuinfo()
    flags = set(fields.get("flags", "").split())
    cores = len(os.sched_getaffinity(0))
    family = int(fields.get("cpu family", "0"))
    model = int(fields.get("model", "0"))
    vendor = fields.get("vendor_id", "")
    if "avx512f" in flags:
        lanes = 16
        if fma_units is None:
            fma_units = 1 if vendor == "AuthenticAMD" and family == 25 else 2
    elif "avx2" in flags and "fma" in flags:
        lanes = 8
        if fma_units is None:
            fma_units = 2
    else:
        lanes = 4
        if fma_units is None:
            fma_units = 1
    nominal_ghz = float(fields.get("cpu MHz", "0")) / 1000
    measured = measure_peak(out_dir, cores) if "avx512f" in flags else None
    if ghz is not None:
        clock_source = "given by --ghz"
    elif measured is not None:
        ghz = measured["clock_ghz"]
        clock_source = "measured by peak.c"
    else:
        ghz = nominal_ghz
        clock_source = "`cpu MHz` of /proc/cpuinfo"
    estimate = cores * fma_units * lanes * 2 * ghz * 1e9
    description = (
        f"{fields.get('model name', '?')} (vendor {vendor}, family {family}, model {model}, "
        f"`cpu MHz` {nominal_ghz:.3f} GHz): estimate {cores} cores x {fma_units} FMA/cycle x "
        f"{lanes} f32 lanes x 2 flops x {ghz:.2f} GHz ({clock_source}) "
        f"= {estimate / 1e9:.1f} GFLOP/s"
    )
    peak = estimate
    if measured is not None and ghz_given is None and fma_given is None:
        # The FMA loop's rate is what the cores deliver. The clock measurement is
        # not reliable on every CPU: on an Intel Xeon under a hypervisor it gave 18-20 GHz.
        peak = measured["fma_gflops"] * 1e9
        description += (
            f"; used instead: peak.c measured {measured['fma_gflops']:.1f} GFLOP/s of "
            f"independent 512-bit FMAs on {measured['threads']} threads"
        )
    return peak, description


def make_session(model, threads):
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )


def time_session(session, features, seconds):
    """Time `session` on `features` and return each run's wall-clock seconds.

    After 3 warm-up runs it runs until `seconds` have passed, at least 10 times.
    """
    feeds = {"input": features}
    for _ in range(3):
        session.run(["output"], feeds)
    times = []
    start = time.perf_counter()
    while len(times) < 10 or time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        session.run(["output"], feeds)
        times.append(time.perf_counter() - t0)
    return times


def main():
    args = parse_args()
    batches = [int(b) for b in args.batch.split(",")]
    with tempfile.TemporaryDirectory(prefix="gridcast-onnx-") as scratch:
        out_dir = args.out or Path(scratch)
        out_dir.mkdir(parents=True, exist_ok=True)
        return compare(args, batches, out_dir)


def check_outputs(session, report, out_dir, tolerance, side):
    """Run `session` on the input gridcast wrote and exit with an error unless every
    output value is within `tolerance` of gridcast's. Returns the input and the max
    abs difference."""
    batch = report["batch"]
    out_dir = out_dir / BACKENDS[side]
    features = np.load(out_dir / report["input_file"])
    expected = np.load(out_dir / report["output_file"])
    (actual,) = session.run(["output"], {"input": features})
    if actual.shape != expected.shape:
        sys.exit(
            f"FAILED: batch {batch}: ONNX Runtime output shape {actual.shape} "
            f"differs from {side}'s {expected.shape}"
        )
    max_diff = float(np.max(np.abs(actual - expected)))
    print(
        f"batch {batch}: max abs difference ONNX Runtime vs {side} = {max_diff:.3g}"
    )
    if not max_diff <= tolerance:
        sys.exit(
            f"FAILED: batch {batch}: outputs differ by up to {max_diff:.3g}, more than "
            f"the tolerance {tolerance:g}, so the ONNX graph does not match "
            "models/src/network.rs"
        )
    return features, max_diff


def compare(args, batches, out_dir):
    peak, peak_description = peak_flops(out_dir, args.ghz, args.fma_units)
    print("peak:", peak_description)
    print(
        f"onnxruntime {ort.__version__}, onnx {onnx.__version__}, numpy {np.__version__}"
    )

    manifest = json.loads((MODEL_DIR / "manifest.json").read_text())
    weights = load_file(str(MODEL_DIR / manifest["weights_file"]))
    for name in NON_NETWORK_TENSORS:
        weights.pop(name, None)
    n_lat = manifest["grid"]["lat"]["count"]
    n_lon = manifest["grid"]["lon"]["count"]
    model = build_graph(manifest, weights, n_lat, n_lon)
    onnx.save(model, str(out_dir / "storm-cnn.onnx"))
    session = make_session(model, args.threads)

    # Rounds alternate the two sides, so a slow spell of the machine shows up as a
    # spread between rounds instead of favouring one side.
    measurements = {batch: [] for batch in batches}
    for round_index in range(args.rounds):
        print(f"round {round_index + 1} of {args.rounds}")
        reports = {
            side: run_gridcast(out_dir, batches, args.seconds, BACKENDS[side])
            for side in ("gridcast", "candle")
        }
        for index, batch in enumerate(batches):
            measured = {}
            for side, report in reports.items():
                report = report["batches"][index]
                features, max_diff = check_outputs(
                    session, report, out_dir, args.tolerance, side
                )
                flops = conv_flops(manifest, weights, batch, n_lat, n_lon)
                if flops != report["flops_per_forward"]:
                    sys.exit(
                        f"FAILED: batch {batch}: FLOP count {flops} differs from the "
                        f"Rust example's {report['flops_per_forward']}"
                    )
                measured[f"{side}_max_abs_diff"] = max_diff
                measured[f"{side}_median_s"] = report["median_seconds"]
                measured[f"{side}_iterations"] = report["iterations"]
                measured[f"{side}_executed_flops"] = report["executed_flops_per_forward"]
            times = time_session(session, features, args.seconds)
            measured["flops_per_forward"] = flops
            measured["ort_median_s"] = statistics.median(times)
            measured["ort_iterations"] = len(times)
            measurements[batch].append(measured)

    print()
    print(f"peak: {peak_description}")
    print(
        f"threads: gridcast {reports['gridcast']['threads']}, "
        f"ONNX Runtime intra-op {args.threads}"
    )
    flops_per_member = measurements[batches[0]][0]["flops_per_forward"] // batches[0]
    print(f"convolution FLOPs per forward pass and batch member: {flops_per_member:,}")
    print_table(measurements, n_lat * n_lon, peak, args.rounds)
    results = {
        "peak_flops": peak,
        "peak": peak_description,
        "onnxruntime": ort.__version__,
        "threads": args.threads,
        "gridcast_threads": reports["gridcast"]["threads"],
        "rounds": args.rounds,
        "seconds": args.seconds,
        "measurements": measurements,
    }
    (out_dir / "results.json").write_text(json.dumps(results, indent=2))
    return 0


def print_table(measurements, cells_per_member, peak, rounds):
    """Print the Markdown table: per batch, the median over rounds of each side's
    median time, with the lowest and highest cells/s of the rounds in brackets."""
    print()
    print(f"median over {rounds} rounds (lowest-highest round in brackets)")
    print()
    names = {"gridcast": "gridcast", "candle": "candle", "ort": "ORT"}
    header = ["batch"]
    for side in SIDES:
        header += [f"{names[side]} ms", f"{names[side]} cells/s"]
    header += ["gridcast / ORT", "gridcast / candle"]
    header += [f"{names[side]} GFLOP/s (% peak)" for side in SIDES]
    header += ["gridcast executed GFLOP/s (% peak)"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for batch, rounds_of_batch in measurements.items():
        cells = batch * cells_per_member
        flops = rounds_of_batch[0]["flops_per_forward"]
        columns = [str(batch)]
        gflops = {}
        for side in SIDES:
            seconds = [m[f"{side}_median_s"] for m in rounds_of_batch]
            median = statistics.median(seconds)
            gflops[side] = flops / median / 1e9
            columns.append(f"{median * 1e3:.3g}")
            columns.append(
                f"{cells / median:,.0f} ({cells / max(seconds):,.0f}-{cells / min(seconds):,.0f})"
            )
        # Speed ratios: above 1 means gridcast's kernel is faster.
        columns.append(f"{gflops['gridcast'] / gflops['ort']:.2f}")
        columns.append(f"{gflops['gridcast'] / gflops['candle']:.2f}")
        for side in SIDES:
            columns.append(
                f"{gflops[side]:.2f} ({100 * gflops[side] * 1e9 / peak:.1f}%)"
            )
        # The kernel skips all-zero weight blocks, so it performs fewer FLOPs than
        # the dense count that the columns above divide by.
        executed = rounds_of_batch[0]["gridcast_executed_flops"]
        seconds = statistics.median(m["gridcast_median_s"] for m in rounds_of_batch)
        rate = executed / seconds / 1e9
        columns.append(f"{rate:.2f} ({100 * rate * 1e9 / peak:.1f}%)")
        print("| " + " | ".join(columns) + " |")


if __name__ == "__main__":
    sys.exit(main())
