"""`masktron serve`: a local web page to label images with SAM and save COCO JSON.

Needs the `web` extra (starlette, uvicorn). `create_app` builds the page and its API from an
`ImageFolder`, an `AnnotationStore` and, optionally, a `Segmenter` (SAM) and a `Detector`.
"""
