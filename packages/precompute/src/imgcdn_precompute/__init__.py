"""imgcdn precompute: the S3-event worker that renders the standard variant set of each upload."""
