// run.js - runs an ONNX model in ONNX Runtime (onnxruntime-node) for
// tests/test_onnx.c: node run.js MODEL.onnx INPUT.f32 N C H W OUTPUT.f32
// reads N x C x H x W float32 pixels, writes the N x classes logits, and
// prints the model's "labels" metadata (or null) as one JSON line.
'use strict';
const fs = require('fs');
const ort = require('onnxruntime-node');

async function main() {
	const [model, input, n, c, h, w, output] = process.argv.slice(2);
	const dims = [n, c, h, w].map(Number);
	const buf = fs.readFileSync(input);
	const x = new Float32Array(buf.buffer, buf.byteOffset, buf.length / 4);
	const session = await ort.InferenceSession.create(model, { intraOpNumThreads: 1 });
	const out = await session.run({ pixels: new ort.Tensor('float32', x, dims) });
	const logits = out.logits;
	fs.writeFileSync(output, Buffer.from(logits.data.buffer, logits.data.byteOffset,
		logits.data.byteLength));
	console.log(JSON.stringify({ dims: logits.dims, inputs: session.inputNames,
		outputs: session.outputNames }));
}

main().catch((e) => { console.error(String(e)); process.exit(1); });
