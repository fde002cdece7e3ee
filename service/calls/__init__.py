"""What every gRPC call of the service gets, whichever code answers it."""
