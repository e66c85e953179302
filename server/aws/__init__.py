"""DynamoDB, its Streams, the Lambda copy and the embedded DynamoDB Local."""
