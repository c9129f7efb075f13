"""Training pipelines: pretraining corpus, CrysAtom pretraining, Atom2Vec and the element probe."""
