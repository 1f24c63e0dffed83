{application, beamq_interop,
 [{description, "beamq interop: a BEAM node as a beamq routing peer and cluster member"},
  {vsn, "0.1.0"},
  {modules, [beamq_interop, beamq_interop_app, beamq_broker, beamq_topic, beamq_routes,
             beamq_cluster, beamq_cluster_keeper, beamq_epmd]},
  {registered, [beamq_interop_sup, beamq_broker, beamq_cluster, beamq_cluster_keeper]},
  {applications, [kernel, stdlib]},
  {mod, {beamq_interop_app, []}},
  {env, [{data_dir, "beamq_data"}]}]}.
