"""Inside the model: the attention of every layer and head, from a model directory's attention-detail graph."""
