-- The run id of the server holding KEYS[1] (on a Redis Cluster, the master
-- serving its slot): new at every start, and another after a failover.
return string.match(redis.call('INFO', 'server'), 'run_id:(%w+)')
