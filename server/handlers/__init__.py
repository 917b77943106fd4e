"""The rules: who may do what. Endpoints parse and serialise; storage stores."""
