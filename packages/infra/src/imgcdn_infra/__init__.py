"""imgcdn infra: the CDK app that wires buckets, queue, Lambdas and CloudFront."""
