"""imgcdn local: the whole pipeline on one machine, behaving like the CloudFront distribution."""
