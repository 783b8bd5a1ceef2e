"""imgcdn edge: the viewer-request CloudFront Function and the fallback transformer."""
