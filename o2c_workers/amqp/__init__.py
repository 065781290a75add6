"""RabbitMQ as the broker: its topology, and publishing with confirms."""
