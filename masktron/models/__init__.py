"""Model families: R-CNN, RetinaNet, Panoptic FPN, Segment Anything."""
