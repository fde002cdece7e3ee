"""What the service tells about itself besides its request metrics."""
