"""Making a trained model smaller: structured and unstructured pruning, int8 quantization of ONNX files.

Nothing is imported here, so `import edgedistill.compress.quantize` never pulls in torch.
"""
